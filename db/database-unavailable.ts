// The one place that tells "the database is not reachable right now" from every other failure.
// Such an error says nothing about the request: the same call can succeed once PostgreSQL is back,
// so callers retry it (or tell their client to) instead of treating it as a bug.
import { setTimeout as sleep } from 'node:timers/promises';

/** Socket-level failures: nothing reached the server, or the connection to it broke. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs of a server going away: class 08 (connection exception) and 57P01–57P03
 * (admin_shutdown, crash_shutdown, cannot_connect_now — shutting down or starting up).
 */
const SERVER_GONE_CODES = new Set(['57P01', '57P02', '57P03']);

/** pg and pg-pool report a lost or unobtainable connection with plain Errors carrying these messages. */
const CONNECTION_MESSAGES = new Set([
  'Connection terminated',
  'Connection terminated unexpectedly',
  'Connection terminated due to connection timeout',
  'Client has encountered a connection error and is not queryable',
  'timeout exceeded when trying to connect',
]);

/** Causes are followed this deep at most (a cycle must not hang the check). */
const MAX_DEPTH = 5;

/** Whether `error` (or what caused it) means the database could not be reached or the connection was lost. */
export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (depth > MAX_DEPTH || typeof error !== 'object' || error === null) return false;
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined && (NETWORK_CODES.has(code) || SERVER_GONE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  // pg-boss reports a worker's failure as a plain object copied from the error, with where it
  // happened appended to the message: "Connection terminated unexpectedly (Queue: …, Worker: …)".
  const message = 'message' in error && typeof error.message === 'string' ? error.message.replace(/ \(Queue: .*\)$/, '') : undefined;
  if (message !== undefined && CONNECTION_MESSAGES.has(message)) return true;
  // Connecting to a host with several addresses fails with one error per address.
  if (error instanceof AggregateError && error.errors.some((inner) => isDatabaseUnavailable(inner, depth + 1))) return true;
  return 'cause' in error && isDatabaseUnavailable(error.cause, depth + 1);
}

/** How long to wait before the next try while the database is unavailable: doubling, with jitter. */
export function unavailableBackoffMs(attempt: number, options: { minMs?: number; maxMs?: number } = {}): number {
  const ceiling = Math.min(options.maxMs ?? 2_000, (options.minMs ?? 100) * 2 ** attempt);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/**
 * Runs `operation`, trying again while it fails because the database is unavailable, until
 * `signal` aborts (then the last error is thrown). Any other error is thrown at once. For work
 * that has no caller to hand a "retry later" to, such as a subscription's reads.
 */
export async function retryWhileDatabaseUnavailable<T>(operation: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await operation();
    } catch (error) {
      if (!isDatabaseUnavailable(error) || signal?.aborted) throw error;
      // An abort ends the wait early; the check below then gives up.
      await sleep(unavailableBackoffMs(attempt), undefined, signal ? { signal } : {}).catch(() => {});
      if (signal?.aborted) throw error;
    }
  }
}
