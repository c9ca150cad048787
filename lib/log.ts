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

export function createLogger(format: LogFormat, sink: LogSink = process.stderr, now = () => new Date()): Logger {
  const emit = (level: LogLevel, event: string, fields: LogFields = {}) => {
    const at = now().toISOString();
    if (format === 'json') {
      sink.write(JSON.stringify({ at, level, event, ...fields }) + '\n');
      return;
    }
    let line = `${at} ${level.padEnd(5)} ${event}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      const text = String(value);
      line += ` ${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
    }
    sink.write(line + '\n');
  };
  return {
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}

/** A logger that drops everything: the default for tests and library use. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
