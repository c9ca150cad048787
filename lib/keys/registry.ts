// keys/ owns named keys (SPEC §15): the keys file, who a request is, what a key may do, and usage.
//
// The keys in force: built from `tokens`/`token_file` and `keys_file`, looked up by the token a
// caller presents (Bearer or x-api-key, constant time), read again on SIGHUP and when the file
// changes. A bad file keeps the keys in force and says why in the log (SPEC §15).

import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { silentLogger, type Logger } from '../log.js';
import { ANONYMOUS, KeysFileError, keysFromTokens, parseKeysFile, sha256, type Key } from './keys-file.js';

export interface KeyRegistryOptions {
  tokens: readonly string[];
  keysFile?: string;
  log?: Logger;
}

/** How often the keys file's mtime and size are polled (fs.watchFile survives editors that replace the file). */
const WATCH_INTERVAL_MS = 1_000;

/** Request headers as node:http gives them; keys/ needs only this shape, not node:http. */
export type RequestHeaders = { readonly authorization?: string; readonly [name: string]: string | string[] | undefined };

/** The token a caller presents: `Authorization: Bearer …` or, as Anthropic clients send it, `x-api-key`. */
export function presentedTokens(headers: RequestHeaders): string[] {
  const out: string[] = [];
  const m = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '');
  if (m) out.push(m[1]!.trim());
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') out.push(apiKey.trim());
  return out;
}

export class KeyRegistry {
  readonly #tokenKeys: Key[];
  readonly #file: string | undefined;
  readonly #log: Logger;
  #keys: Key[];
  #byName: Map<string, Key>;
  #listeners: Array<(keys: readonly Key[]) => void> = [];
  #watching = false;
  /** sha256 of the file text last read, so a change already loaded (by SIGHUP, say) is not loaded twice */
  #lastText = '';
  /** reloads done and refused, and the last refusal's reason (GET /keys shows it to admins) */
  readonly reloads = { ok: 0, refused: 0, lastError: null as string | null };

  /** Throws KeysFileError when the file is missing or bad: at start there are no keys to keep. */
  constructor(options: KeyRegistryOptions) {
    this.#tokenKeys = keysFromTokens(options.tokens);
    this.#file = options.keysFile;
    this.#log = options.log ?? silentLogger;
    this.#keys = this.#read();
    this.#byName = new Map(this.#keys.map((k) => [k.name, k]));
  }

  /** Whether callers must present a token: true once any token or a keys file is configured. */
  get enabled(): boolean {
    return this.#file !== undefined || this.#tokenKeys.length > 0;
  }

  get file(): string | undefined {
    return this.#file;
  }

  list(): readonly Key[] {
    return this.#keys;
  }

  byName(name: string): Key | undefined {
    return this.#byName.get(name);
  }

  /**
   * The key whose token the request presents, or null. Every key's digest is compared, whatever
   * matched, so the time taken says nothing about which token came close.
   */
  authenticate(headers: RequestHeaders): Key | null {
    if (!this.enabled) return ANONYMOUS;
    let found: Key | null = null;
    for (const token of presentedTokens(headers)) {
      const given = sha256(token);
      for (const key of this.#keys) if (timingSafeEqual(key.digest, given) && found === null) found = key;
    }
    return found;
  }

  /** Called with the new keys after each successful reload. */
  onReload(listener: (keys: readonly Key[]) => void): void {
    this.#listeners.push(listener);
  }

  /** Reads the keys file again; a bad or missing file keeps the keys in force. True when the keys changed. */
  reload(reason = 'reload'): boolean {
    if (this.#file === undefined) return false;
    let keys: Key[];
    const seen = this.#lastText;
    try {
      keys = this.#read();
      if (reason === 'file changed' && this.#lastText === seen) return false; // same text: nothing to do
    } catch (err) {
      this.reloads.refused++;
      this.reloads.lastError = (err as Error).message;
      this.#log.error('keys file refused, keeping the keys in force', { file: this.#file, reason, error: (err as Error).message });
      return false;
    }
    this.#keys = keys;
    this.#byName = new Map(keys.map((k) => [k.name, k]));
    this.reloads.ok++;
    this.reloads.lastError = null;
    this.#log.info('keys reloaded', { file: this.#file, reason, keys: keys.length });
    for (const listener of this.#listeners) listener(keys);
    return true;
  }

  /** Reloads whenever the file's size or mtime changes (or it comes back after a removal). */
  watch(): void {
    if (this.#file === undefined || this.#watching) return;
    this.#watching = true;
    watchFile(this.#file, { interval: WATCH_INTERVAL_MS, persistent: false }, this.#onChange);
  }

  close(): void {
    if (this.#watching && this.#file !== undefined) unwatchFile(this.#file, this.#onChange);
    this.#watching = false;
  }

  readonly #onChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    this.reload('file changed');
  };

  #read(): Key[] {
    if (this.#file === undefined) return [...this.#tokenKeys];
    let text: string;
    try {
      text = readFileSync(this.#file, 'utf8');
    } catch (err) {
      throw new KeysFileError([`cannot read '${this.#file}': ${(err as Error).message}`]);
    }
    this.#lastText = sha256(text).toString('hex');
    return [...this.#tokenKeys, ...parseKeysFile(text, this.#tokenKeys)];
  }
}
