// Many realtime subscribers in this process: each is its own `createKilnClient` (so its own
// WebSocket connection, authenticated once by its connection parameters) with one `onUpdate`
// subscription to all of the tenant's generations. What each receives is recorded with the
// time it arrived, taken in the tRPC client's onData callback.
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
  /** Opens `count` more connections and subscriptions, `wave` at a time; resolves when the server has started them all. */
  grow(count: number, options: { wave: number; timeoutMs: number; signal: AbortSignal }): Promise<void>;
  /** Closes every connection; safe to call more than once. */
  close(): Promise<void>;
}

export function createSubscriberPool(options: { url: string; apiKey: string; record: boolean; clock: () => number }): SubscriberPool {
  const subscribers: Subscriber[] = [];
  const clients: KilnClient[] = [];

  function open(): Promise<void> {
    const client = createKilnClient({ url: options.url, apiKey: options.apiKey });
    clients.push(client);
    const subscriber: Subscriber = { ids: [], generationIds: [], receivedAt: [], starts: 0, errors: [] };
    subscribers.push(subscriber);
    return new Promise<void>((resolve, reject) => {
      client.trpc.onUpdate.subscribe(
        {},
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
    async grow(count, { wave, timeoutMs, signal }) {
      for (let opened = 0; opened < count; opened += wave) {
        signal.throwIfAborted();
        const size = Math.min(wave, count - opened);
        await withTimeout(
          Promise.all(Array.from({ length: size }, open)),
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
 * clock_timestamp() on the same machine). Make a new one per phase so NTP slewing cannot add up.
 */
export function calibratedWallClock(): () => number {
  const first = Date.now();
  let before = performance.now();
  let now = Date.now();
  while (now === first) {
    before = performance.now();
    now = Date.now();
  }
  const after = performance.now();
  const offset = now - (before + after) / 2;
  return () => offset + performance.now();
}
