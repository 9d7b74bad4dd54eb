// Many realtime subscribers in this process: each is its own `createKilnClient` (so its own
// WebSocket connection, authenticated once by its connection parameters) with one `onUpdate`
// subscription — to all of the tenant's generations, or to one generation. What each receives
// is recorded with the time it arrived, taken in the tRPC client's onData callback.
import { createKilnClient, type KilnClient } from '../../client-sdk/index.ts';
import { withTimeout } from './harness.ts';

export interface Subscriber {
  /** Event ids (`xid:id` feed positions) in the order they arrived. */
  readonly ids: string[];
  readonly generationIds: string[];
  /** Wall-clock ms (sub-ms precision) at onData, parallel to `ids`. */
  readonly receivedAt: number[];
  /** onStarted calls: more than 1 means the client reconnected and resubscribed. */
  starts: number;
  readonly errors: string[];
}

export interface SubscriberPool {
  readonly subscribers: readonly Subscriber[];
  /**
   * Opens `count` more connections and subscriptions, `wave` at a time; resolves when the server
   * has started them all. Each watches `generationId`, or all of the tenant's generations.
   */
  grow(count: number, options: { wave: number; timeoutMs: number; signal: AbortSignal; generationId?: string }): Promise<void>;
  /** Closes every connection; safe to call more than once. */
  close(): Promise<void>;
}

/** `urls`: the API processes; subscribers connect to them in turn (as a load balancer would spread them). */
export function createSubscriberPool(options: { urls: readonly string[]; apiKey: string; record: boolean; clock: () => number }): SubscriberPool {
  const subscribers: Subscriber[] = [];
  const clients: KilnClient[] = [];

  function open(generationId: string | undefined): Promise<void> {
    const client = createKilnClient({ url: options.urls[subscribers.length % options.urls.length]!, apiKey: options.apiKey });
    clients.push(client);
    const subscriber: Subscriber = { ids: [], generationIds: [], receivedAt: [], starts: 0, errors: [] };
    subscribers.push(subscriber);
    return new Promise<void>((resolve, reject) => {
      client.trpc.onUpdate.subscribe(
        generationId ? { generationId } : {},
        {
          onStarted: () => {
            subscriber.starts += 1;
            resolve();
          },
          onData: ({ data }) => {
            if (!options.record) return;
            subscriber.receivedAt.push(options.clock());
            subscriber.ids.push(data.id);
            subscriber.generationIds.push(data.generationId);
          },
          onError: (error) => {
            subscriber.errors.push(error.message);
            reject(error);
          },
        },
      );
    });
  }

  return {
    subscribers,
    async grow(count, { wave, timeoutMs, signal, generationId }) {
      for (let opened = 0; opened < count; opened += wave) {
        signal.throwIfAborted();
        const size = Math.min(wave, count - opened);
        await withTimeout(
          Promise.all(Array.from({ length: size }, () => open(generationId))),
          timeoutMs,
          () => `subscriptions were not all started within ${timeoutMs / 1000} s (${subscribers.length} opened so far)`,
          signal,
        );
      }
    },
    async close() {
      const closing = clients.splice(0, clients.length);
      // close() waits for the socket to close; a server that is gone must not hold us up.
      await withTimeout(Promise.allSettled(closing.map((client) => client.close())), 5_000, () => 'closing the subscribers timed out').catch(() => {});
    },
  };
}

/**
 * A wall clock with sub-millisecond resolution: performance.now() anchored at the moment
 * Date.now() ticks over, so it reads the same clock as Date.now() (and as PostgreSQL's
 * clock_timestamp() on the same machine). The tick is bracketed between two performance.now()
 * reads; of a few ticks the tightest bracket is kept, so a preemption cannot skew the anchor.
 * Make a new one per phase so NTP slewing cannot add up.
 */
export function calibratedWallClock(): () => number {
  let best = { offset: 0, width: Infinity };
  for (let tick = 0; tick < 5; tick += 1) {
    const old = Date.now();
    let lower = performance.now();
    let now = Date.now();
    while (now === old) {
      lower = performance.now(); // after a read that still saw the old millisecond
      now = Date.now();
    }
    const upper = performance.now(); // after the read that saw the new one
    if (upper - lower < best.width) best = { offset: now - (lower + upper) / 2, width: upper - lower };
  }
  const { offset } = best;
  return () => offset + performance.now();
}
