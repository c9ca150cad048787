// One line per event to stderr, as text or JSON. Callers pass fields, never
// tokens or prompts; the logger has no way to know, so it is the callers' rule.

export type LogFormat = 'text' | 'json';
export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export interface LogSink {
  write(line: string): unknown;
}

/** A field longer than this is cut (a model name or an upstream error can be whatever a caller made it). */
export const MAX_FIELD_CHARS = 1024;

/** C0, DEL, C1 (0x9b is a terminal's CSI) and the JS line separators: never raw in a log line. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
const CONTROL_ALL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

function bound(text: string): string {
  return text.length <= MAX_FIELD_CHARS ? text : `${text.slice(0, MAX_FIELD_CHARS)}…(+${text.length - MAX_FIELD_CHARS} chars)`;
}

/** JSON string syntax, with the controls JSON.stringify leaves alone escaped too. */
function quote(text: string): string {
  return quoteControls(JSON.stringify(text));
}

/** Past this many buffered characters a batched sink writes at once instead of waiting for the turn's end. */
export const MAX_BATCH_CHARS = 64 * 1024;

/**
 * Collects log lines and writes them with one write(): a request logs up to three lines, over
 * two or more event-loop turns, and on stderr (a file or pipe) each write() is a blocking
 * syscall on the request's path. With `delayMs` 0 the lines of one turn leave together (from
 * setImmediate); with more, the lines of that many milliseconds do (measured: 297 → 250–270 µs
 * of CPU per short request, one client at a time). Bounded (`maxChars`: past it, written at once),
 * and written out on process exit (also after an uncaught exception); only a SIGKILL loses the
 * lines still held, at most `delayMs` worth.
 */
export function batchedSink(target: LogSink, maxChars = MAX_BATCH_CHARS, delayMs = 0): LogSink & { flush(): void } {
  let pending = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === '') return;
    const text = pending;
    pending = '';
    // A closed output (see outliveClosedOutput) takes nothing more: the lines go nowhere.
    if (!(target as { destroyed?: boolean }).destroyed) target.write(text);
  };
  process.once('exit', flush);
  return {
    write(line: string) {
      pending += line;
      if (pending.length >= maxChars) flush();
      else if (!scheduled) {
        scheduled = true;
        // unref'd: held lines never keep the process alive; 'exit' writes them.
        if (delayMs > 0) setTimeout(flush, delayMs).unref();
        else setImmediate(flush);
      }
    },
    flush,
  };
}

const guarded = new WeakSet<NodeJS.WritableStream>();

/**
 * A server outlives whoever reads its output: when stdout or stderr is closed under it (the
 * pipe's reader exited: EPIPE; the terminal went away: EIO), node emits 'error' on the stream,
 * which unheard ends the process. Heard, the stream is destroyed and its lines go nowhere; jobs,
 * the journal and the sockets go on. For the long-running commands (serve, demo, sim) only: a
 * client command piped into `head` should stop as Unix tools do.
 */
export function outliveClosedOutput(streams: readonly NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    if (guarded.has(stream)) continue;
    guarded.add(stream);
    stream.on('error', () => {});
  }
}

/** How long stderr's log lines may wait to share one write. */
export const LOG_BATCH_MS = 10;

let stderrSink: LogSink | null = null;
/** One batched sink for process.stderr, shared by every logger of the process (lines stay in order). */
const defaultSink = (): LogSink => (stderrSink ??= batchedSink(process.stderr, MAX_BATCH_CHARS, LOG_BATCH_MS));

export function createLogger(format: LogFormat, sink: LogSink = defaultSink(), now = () => new Date()): Logger {
  const emit = (level: LogLevel, event: string, fields: LogFields = {}) => {
    const at = now().toISOString();
    if (format === 'json') {
      const bounded: LogFields = {};
      for (const [key, value] of Object.entries(fields)) bounded[key] = typeof value === 'string' ? bound(value) : value;
      sink.write(quoteControls(JSON.stringify({ at, level, event: bound(event), ...bounded })) + '\n');
      return;
    }
    let line = `${at} ${level.padEnd(5)} ${CONTROL.test(event) ? quote(bound(event)) : bound(event)}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const text = bound(String(value));
      line += ` ${key}=${/[\s"=\\]/.test(text) || CONTROL.test(text) || text === '' ? quote(text) : text}`;
    }
    sink.write(line + '\n');
  };
  return {
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/** JSON.stringify escapes C0 but leaves DEL, C1 and U+2028/9 raw. */
function quoteControls(json: string): string {
  return json.replace(CONTROL_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A logger that drops everything: the default for tests and library use. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
