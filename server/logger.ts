// Kiln's logger: pino, one JSON object per line (what log shippers read), or readable lines
// through pino-pretty when a person watches a terminal. Secrets are redacted by field name
// whatever a caller passes (the callers pass ids and messages, not credentials, in the first place).
import os from 'node:os';
import pino from 'pino';
import pretty from 'pino-pretty';
import type { LogFields, Logger } from '../jobs/logger.ts';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: readable lines when stderr is a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Field names that may hold a credential, at the top of a line and one level down (`headers.authorization`,
 * `error.token`). Redacted before the line is written, so a careless field cannot leak a key.
 */
export const SECRET_FIELDS: ReadonlySet<string> = new Set(['authorization', 'apiKey', 'api_key', 'token', 'secret', 'password', 'webhookSecret', 'tokenSecret', 'adminToken', 'connectionString', 'databaseUrl', 'cookie']);
export const REDACTED = '[redacted]';

/**
 * The fields with every secret-named one (at the top or one level down) replaced; the same
 * object when there is none. A loop over the line's few keys: pino's own path redaction with
 * wildcards costs about 25 times as much, on a line written for every call.
 */
export function redactSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) {
    const value = fields[key];
    if (SECRET_FIELDS.has(key)) (copy ??= { ...fields })[key] = REDACTED;
    else if (typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Error)) {
      const inner = redactSecrets1(value as Record<string, unknown>);
      if (inner !== value) (copy ??= { ...fields })[key] = inner;
    }
  }
  return copy ?? fields;
}

/** One level down: names only, no deeper. */
function redactSecrets1(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) if (SECRET_FIELDS.has(key)) (copy ??= { ...fields })[key] = REDACTED;
  return copy ?? fields;
}

export interface LoggerOptions {
  level: LogLevel;
  format?: LogFormat;
  /** Fields on every line (the process's role). */
  base?: LogFields;
  /** Where lines go; by default stderr (stdout carries the CLI's own output), written asynchronously. */
  write?: (line: string) => void;
}

/** A Logger that can be flushed before the process exits (lines are written asynchronously). */
export interface RootLogger extends Logger {
  flush(): void;
}

export function createLogger(options: LoggerOptions): RootLogger {
  const readable = resolveFormat(options.format ?? 'auto') === 'pretty';
  const destination = options.write
    ? { write: (line: string) => options.write?.(line.endsWith('\n') ? line.slice(0, -1) : line) }
    : readable
      ? pretty({ destination: 2, colorize: process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true })
      : pino.destination({ dest: 2, sync: false });
  const root = pino(
    {
      level: options.level,
      base: { pid: process.pid, hostname: os.hostname(), ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names, not numbers: what a person filters on in a log viewer.
      formatters: { level: (label) => ({ level: label }), log: redactSecrets, bindings: redactSecrets },
    },
    destination,
  );
  const flush = () => {
    if ('flushSync' in destination && typeof destination.flushSync === 'function') {
      try {
        destination.flushSync();
      } catch {
        // Not open yet, or already closed: nothing is waiting.
      }
    }
  };
  return Object.assign(wrap(root), { flush });
}

function resolveFormat(format: LogFormat): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return process.stderr.isTTY === true ? 'pretty' : 'json';
}

/** The port's (message, fields) onto pino's (fields, message). */
function wrap(logger: pino.Logger): Logger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields?: LogFields) => {
    if (fields === undefined) logger[level](message);
    else logger[level](fields, message);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => wrap(logger.child(fields)),
  };
}
