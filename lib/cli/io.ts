// What every subcommand shares: the streams it writes to and the exit codes it
// returns. Its own module so cli.ts, client.ts and launchd.ts import it and not each other.

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** Exit codes (README "CLI"): scripts branch on these, so they never change meaning. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 3, notFound: 4, conflict: 5 } as const;
