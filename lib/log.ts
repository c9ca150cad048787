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

export function createLogger(format: LogFormat, sink: LogSink = process.stderr, now = () => new Date()): Logger {
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
