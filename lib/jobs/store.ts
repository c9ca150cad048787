// Where the bytes of async jobs live (SPEC §6, §16): request bodies in the journal's kept submit
// lines (small) or DATA_DIR/bodies/ID.json (large), results in DATA_DIR/results/ID.json, each
// fsynced before the journal record that names it. Memory keeps only a bounded cache of results.

import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { realJournalIo, writeFileDurably, type JournalIo } from '../journal/io.js';
import type { Journal } from '../journal/journal.js';
import type { Job } from './records.js';

/** Bodies up to this size ride in the journal (group commit, no file fsync of their own). */
export const INLINE_BODY_MAX = 64 * 1024;
const RESULT_CACHE_BYTES = 16 * 1024 * 1024;
const ID_FILE = /^(job_[0-9a-z]+)\.json$/;

export class JobStore {
  readonly #journal: Journal;
  readonly #io: JournalIo;
  readonly #bodies: string;
  readonly #results: string;
  /** recently read results, least recently used first; bounded by bytes */
  readonly #cache = new Map<string, { response: Record<string, unknown>; bytes: number }>();
  #cacheBytes = 0;

  constructor(dataDir: string, journal: Journal, io: JournalIo = realJournalIo) {
    this.#journal = journal;
    this.#io = io;
    this.#bodies = join(dataDir, 'bodies');
    this.#results = join(dataDir, 'results');
  }

  async init(): Promise<void> {
    await mkdir(this.#bodies, { recursive: true });
    await mkdir(this.#results, { recursive: true });
  }

  /** Writes a large body to its own file, durable (file and directory) before it resolves. */
  async writeBody(id: string, data: Buffer): Promise<void> {
    await this.#writeDurable(this.#bodies, `${id}.json`, data);
  }

  /** The forwarded body of a job, read back from disk when it starts. */
  async readBody(job: Job): Promise<Record<string, unknown>> {
    if (job.bodyFile) return JSON.parse(await readFile(join(this.#bodies, `${job.id}.json`), 'utf8')) as Record<string, unknown>;
    const line = await this.#journal.readKept(job.id);
    if (!line) throw new Error('the request body is no longer stored');
    const record = JSON.parse(line.toString('utf8')) as { t: string; body?: unknown; job?: { body?: unknown } };
    const body = record.t === 'job' ? record.job?.body : record.body;
    if (!body || typeof body !== 'object') throw new Error('the stored request body is damaged');
    return body as Record<string, unknown>;
  }

  /** The job ended: its body is garbage (the kept line drops out at the next compaction). */
  dropBody(job: Pick<Job, 'id' | 'bodyFile'>): Promise<void> {
    if (job.bodyFile) return unlink(join(this.#bodies, `${job.id}.json`)).catch(() => undefined);
    this.#journal.release(job.id);
    return Promise.resolve();
  }

  hasBody(job: Job, bodyFiles: ReadonlySet<string>): boolean {
    return job.bodyFile ? bodyFiles.has(job.id) : this.#journal.hasKept(job.id);
  }

  /** Writes the merged response durably; returns its size. */
  async writeResult(id: string, response: Record<string, unknown>): Promise<number> {
    const data = Buffer.from(JSON.stringify(response));
    await this.#writeDurable(this.#results, `${id}.json`, data);
    this.#remember(id, response, data.length);
    return data.length;
  }

  async readResult(job: Job): Promise<Record<string, unknown> | null> {
    if (job.response) return job.response;
    if (!job.result) return null;
    const hit = this.#cache.get(job.id);
    if (hit) {
      this.#cache.delete(job.id);
      this.#cache.set(job.id, hit);
      return hit.response;
    }
    const data = await readFile(join(this.#results, `${job.id}.json`));
    const response = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    this.#remember(job.id, response, data.length);
    return response;
  }

  dropResult(id: string): void {
    const hit = this.#cache.get(id);
    if (hit) {
      this.#cacheBytes -= hit.bytes;
      this.#cache.delete(id);
    }
    void unlink(join(this.#results, `${id}.json`)).catch(() => undefined);
  }

  /** Names (job ids) of the body and result files present: read once at start. */
  async listFiles(): Promise<{ bodies: Set<string>; results: Set<string> }> {
    const ids = async (dir: string) => {
      const out = new Set<string>();
      for (const name of await readdir(dir)) {
        const m = ID_FILE.exec(name);
        if (m) out.add(m[1]!);
        else if (name.endsWith('.tmp')) await unlink(join(dir, name)).catch(() => undefined);
      }
      return out;
    };
    return { bodies: await ids(this.#bodies), results: await ids(this.#results) };
  }

  /** Deletes files no job needs: written before a crash that came before their journal record. */
  removeOrphans(files: { bodies: Set<string>; results: Set<string> }, needsBody: (id: string) => boolean, needsResult: (id: string) => boolean): number {
    let removed = 0;
    for (const id of files.bodies) {
      if (!needsBody(id)) {
        void unlink(join(this.#bodies, `${id}.json`)).catch(() => undefined);
        removed++;
      }
    }
    for (const id of files.results) {
      if (!needsResult(id)) {
        void unlink(join(this.#results, `${id}.json`)).catch(() => undefined);
        removed++;
      }
    }
    return removed;
  }

  #remember(id: string, response: Record<string, unknown>, bytes: number): void {
    if (bytes > RESULT_CACHE_BYTES / 4) return;
    this.#cache.set(id, { response, bytes });
    this.#cacheBytes += bytes;
    for (const [key, entry] of this.#cache) {
      if (this.#cacheBytes <= RESULT_CACHE_BYTES) break;
      this.#cache.delete(key);
      this.#cacheBytes -= entry.bytes;
    }
  }

  /** tmp file, write, fsync, rename, fsync the directory: the name appears only with whole content. */
  #writeDurable(dir: string, name: string, data: Buffer): Promise<void> {
    return writeFileDurably(join(dir, name), data, this.#io);
  }

}
