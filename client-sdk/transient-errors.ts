// Which failures a client waits out and which it reports. Transient: Kiln (or its database) is
// unavailable for now, the network or the WebSocket dropped, a proxy in between gave up — the
// same call can succeed in a moment. Anything Kiln answered with a reason of its own
// (NOT_FOUND, UNAUTHORIZED, FORBIDDEN, BAD_REQUEST, …) is permanent: asking again changes nothing.
import { TRPCClientError } from '@trpc/client';

/** Codes that mean "not now" rather than "no". */
const TRANSIENT_CODES = new Set(['SERVICE_UNAVAILABLE', 'TOO_MANY_REQUESTS', 'TIMEOUT', 'BAD_GATEWAY', 'GATEWAY_TIMEOUT']);

/** Whether trying the same call again later may succeed. */
export function isTransientError(error: unknown): boolean {
  if (!(error instanceof TRPCClientError)) return false;
  const data: unknown = error.data;
  const code = typeof data === 'object' && data !== null && 'code' in data ? data.code : undefined;
  // No code: no answer from Kiln at all (refused connection, closed WebSocket, a proxy's error page).
  return code === undefined || (typeof code === 'string' && TRANSIENT_CODES.has(code));
}

/** Waits between tries: doubling from 250 ms to 5 s, with jitter so clients do not return in step. */
export function retryDelayMs(failures: number): number {
  const ceiling = Math.min(5_000, 250 * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Runs `call` until it succeeds, fails permanently, or `signal` aborts (then the last error is thrown). */
export async function retryTransient<T>(call: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  for (let failures = 1; ; failures += 1) {
    try {
      return await call();
    } catch (error) {
      if (!isTransientError(error) || signal?.aborted) throw error;
      await pause(retryDelayMs(failures), signal);
      if (signal?.aborted) throw error;
    }
  }
}
