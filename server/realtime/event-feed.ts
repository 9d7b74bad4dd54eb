// One per API process: follows the event log (woken by NOTIFY, read in feed order) and hands
// each event to this process's subscribers. Subscribers are indexed by what they watch (a
// tenant's generations, one generation, one batch — always within one tenant), so a tenant
// never receives another tenant's events, an event costs nothing for the subscribers that
// do not watch it, and each event is read and enriched once per process, not per subscriber.
import type { Kysely } from 'kysely';
import { currentFeedPosition, readFeed, type FeedPosition } from '../../db/events.ts';
import { createListener } from '../../db/listener.ts';
import type { Database, GenerationEvent } from '../../db/schema.ts';
import type { Logger } from '../../jobs/logger.ts';
import { EncodedEvent, toRealtimeEvents } from './event-view.ts';

/** What a subscriber watches: all of a tenant's generations, or one generation or batch of it. */
export interface Watch {
  tenantId: string;
  generationId?: string | undefined;
  batchId?: string | undefined;
}

export interface FeedSubscriber {
  watch: Watch;
  deliver(event: EncodedEvent): void;
}

export interface EventFeed {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Registers a subscriber; from now on it gets every matching event after `position()`. */
  subscribe(subscriber: FeedSubscriber): Promise<() => void>;
  subscriberCount(): number;
}

export interface EventFeedOptions {
  db: Kysely<Database>;
  connectionString: string;
  publicUrl: () => string;
  logger: Logger;
  /** Events per read, the wait after a failed read, and after one that met an event held back; the listener's reconnect waits. */
  reads: { pageSize: number; retryMs: number; heldBackRetryMs: number; listenerReconnectMs: { minMs: number; maxMs: number } };
  /**
   * Runs a dispatch so that what it writes to sockets goes out together (the API process
   * corks its sockets until the next turn of the event loop). When the process is busy,
   * several events reach a subscriber per page; one write per socket instead of one per
   * event is what keeps a fan-out to thousands of sockets fast.
   */
  batchWrites?: (dispatch: () => void) => void;
}

export function createEventFeed(options: EventFeedOptions): EventFeed {
  const { db, logger } = options;
  const byWatch = new Map<string, Set<FeedSubscriber>>();
  let subscribers = 0;
  let position: FeedPosition | undefined; // undefined while nobody listens: nothing to follow
  let positioning: Promise<void> | undefined; // the first subscriber's lookup, shared by all
  let draining = false;
  let again = false;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let failing = false; // reads are failing (the database is away): said once, not every retry

  const listener = createListener({
    connectionString: options.connectionString,
    channel: 'kiln_events',
    onNotify: () => poke(),
    onError: (error) => logger.warn('event listener connection failed; reconnecting', { error: error.message }),
    reconnectMs: options.reads.listenerReconnectMs,
  });

  function poke(): void {
    if (draining) again = true;
    else void drain();
  }

  async function drain(): Promise<void> {
    draining = true;
    try {
      do {
        again = false;
        const from = position;
        if (!from || stopped) break;
        const page = await readFeed(db, from, options.reads.pageSize);
        if (page.events.length > 0) {
          // Only events some subscriber here watches are worth enriching.
          const wanted = page.events.filter((event) => watchersOf(event).length > 0);
          const views = await toRealtimeEvents(db, wanted, options.publicUrl());
          // Encoded once here, the same text goes to every subscriber of this process.
          const encoded = views.map((view) => new EncodedEvent(view));
          const batchWrites = options.batchWrites ?? ((run) => run());
          batchWrites(() =>
            encoded.forEach((event, index) => {
              // Looked up again: a subscriber may have left while the page was enriched.
              for (const watchers of watchersOf(wanted[index]!)) for (const subscriber of watchers) subscriber.deliver(event);
            }),
          );
          // Unless everyone left meanwhile (and a newcomer may have set a new start).
          const last = page.events.at(-1)!;
          if (position === from) position = { xid: last.xid, id: last.id };
        }
        if (page.events.length === options.reads.pageSize) again = true;
        else if (page.heldBack) scheduleRetry(options.reads.heldBackRetryMs);
      } while (again);
      if (failing) logger.info('reading the event feed again');
      failing = false;
    } catch (error) {
      if (!failing) logger.warn('reading the event feed failed; retrying until it works', { error: error instanceof Error ? error.message : String(error) });
      failing = true;
      scheduleRetry(options.reads.retryMs);
    } finally {
      draining = false;
    }
  }

  function scheduleRetry(ms: number): void {
    if (retry || stopped) return;
    retry = setTimeout(() => {
      retry = undefined;
      poke();
    }, ms);
  }

  /** The subscriber sets an event goes to: its tenant's, its generation's, its batch's. */
  function watchersOf(event: GenerationEvent): Set<FeedSubscriber>[] {
    const keys = [watchKey({ tenantId: event.tenant_id }), watchKey({ tenantId: event.tenant_id, generationId: event.generation_id })];
    if (event.batch_id) keys.push(watchKey({ tenantId: event.tenant_id, batchId: event.batch_id }));
    return keys.flatMap((key) => byWatch.get(key) ?? []);
  }

  return {
    start: () => listener.start(),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await listener.stop();
    },
    async subscribe(subscriber) {
      // The first subscriber starts the feed at "now" (backfill covers anything older). One
      // lookup for all who arrive together, and never moved once set.
      if (!position) {
        positioning ??= currentFeedPosition(db)
          .then((found) => {
            if (position) return;
            position = found;
            // Events after it may be held back by an older transaction, and their NOTIFY came
            // while nobody followed: a drain now retries until they are released.
            poke();
          })
          .finally(() => {
            positioning = undefined;
          });
        await positioning;
      }
      const key = watchKey(subscriber.watch);
      let set = byWatch.get(key);
      if (!set) byWatch.set(key, (set = new Set()));
      set.add(subscriber);
      subscribers += 1;
      const own = set;
      return () => {
        if (!own.delete(subscriber)) return;
        subscribers -= 1;
        if (own.size === 0) byWatch.delete(key);
        if (subscribers === 0) position = undefined;
      };
    },
    subscriberCount: () => subscribers,
  };
}

/** One key per thing watched; a generation's or batch's key includes its tenant. */
function watchKey(watch: Watch): string {
  if (watch.generationId) return `generation:${watch.tenantId}:${watch.generationId}`;
  if (watch.batchId) return `batch:${watch.tenantId}:${watch.batchId}`;
  return `tenant:${watch.tenantId}`;
}
