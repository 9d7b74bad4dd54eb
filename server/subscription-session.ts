// What an open subscription holds besides its stream: a slot of its connection, and its
// caller's credential, which must stay good for as long as the subscription lives. The
// credential is verified again whenever its last verification lapses (a key's cache entry, a
// token's expiry); once that fails — the key was revoked, the token expired or its key was —
// the subscription ends with UNAUTHORIZED. A check that fails for another reason (the database
// is away) is tried again: subscriptions wait outages out.
import type { Authenticated, AuthResult, SocketConnection } from './context.ts';
import { unauthorized } from './errors.ts';

export interface SubscriptionSession {
  /** Aborts when the client leaves (reason: the client's) or the credential lapses (reason: an UNAUTHORIZED DomainError). */
  signal: AbortSignal;
  /** Frees the slot and stops the checks; safe to call more than once. */
  end(): void;
}

export interface SessionOptions {
  authenticate: () => Promise<AuthResult>;
  authenticated: Authenticated;
  connection: SocketConnection | undefined;
  /** The subscription's own signal: the client stopped it or left. */
  signal: AbortSignal | undefined;
  /** The soonest a credential is checked again, and the wait after a check that could not be made. */
  recheckMs: number;
}

/** Throws TOO_MANY_REQUESTS (the connection holds its limit) before anything starts. */
export function openSubscriptionSession(options: SessionOptions): SubscriptionSession {
  const release = options.connection?.admitSubscription();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let ended = false;

  const end = () => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onClientGone);
    release?.();
  };
  function onClientGone() {
    controller.abort(options.signal?.reason);
    end();
  }
  const schedule = (at: number) => {
    if (ended || controller.signal.aborted) return;
    timer = setTimeout(() => void check(), Math.max(options.recheckMs, at - Date.now()));
    timer.unref();
  };
  async function check() {
    const result = await options.authenticate().catch(() => undefined);
    if (!result) return schedule(Date.now() + options.recheckMs);
    if (result.ok) return schedule(result.validUntil);
    controller.abort(unauthorized(result.reason));
  }

  if (options.signal?.aborted) onClientGone();
  else options.signal?.addEventListener('abort', onClientGone, { once: true });
  schedule(options.authenticated.validUntil);
  return { signal: controller.signal, end };
}
