/** A line's fields: ids that tie it to a request, a job or a prediction, and what happened. */
export type LogFields = Record<string, unknown>;

/**
 * What the worker needs from a logger; server/ supplies the implementation (pino). Fields are
 * data, never secrets: callers pass ids and messages, not keys, tokens or request bodies.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose every line also carries `fields` (a request's or a job's ids), bound once. */
  child(fields: LogFields): Logger;
}

/** Says nothing: for parts that may run without a logger of their own. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
