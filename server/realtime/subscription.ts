// One client's subscription: register with the feed first, then backfill from the table, then
// pass live events on — skipping any the backfill already sent. Positions are one total
// order, so "skip what is not after the last sent" is exact: every event once, in order.
// A database that goes away while it streams is waited out: its reads are retried until the
// database is back (the feed catches up by itself), so the subscription neither ends nor misses
// anything, and the client has nothing to do.
import { tracked, type TrackedEnvelope } from '@trpc/server';
import type { Kysely } from 'kysely';
import { isDatabaseUnavailable, retryWhileDatabaseUnavailable } from '../../db/database-unavailable.ts';
import { FEED_START, comparePositions, currentFeedPosition, decodePosition, readFeed, type FeedFilter, type FeedPosition } from '../../db/events.ts';
import type { QueueEstimate } from '../../db/queue-estimates.ts';
import type { Database, GenerationState } from '../../db/schema.ts';
import type { RealtimeEvent } from '../api-types.ts';
import { DomainError } from '../errors.ts';
import type { SubscriberConnection } from '../services.ts';
import type { EventFeed } from './event-feed.ts';
import { EncodedEvent, toRealtimeEvents } from './event-view.ts';

export interface SubscriptionRequest {
  tenantId: string;
  generationId?: string;
  batchId?: string;
  /** Resume after this position (tRPC passes the last tracked id on reconnect). */
  lastEventId?: string | null;
}

/** WebSocket close code for a reader that fell too far behind (4000–4999: the application's). */
export const SLOW_CONSUMER_CLOSE_CODE = 4008;

export interface QueueUpdates {
  /** Where the generation stands in its lane, or null once it is no longer queued. */
  estimate(): Promise<QueueEstimate | null>;
  intervalMs: number;
}

export interface SubscriptionOptions {
  /** For a one-generation subscription: also send its queue position while it waits. */
  queueUpdates?: QueueUpdates;
  db: Kysely<Database>;
  feed: EventFeed;
  publicUrl: () => string;
  /** Live events buffered for one subscriber before it is cut off as too slow. */
  maxBuffered: number;
  /** Bytes waiting in the subscriber's socket before it is cut off as too slow. */
  maxSocketBufferBytes: number;
  connection: SubscriberConnection | undefined;
  /** Ends the stream: quietly when the client left, with the reason when that is a DomainError (a revoked credential). */
  signal: AbortSignal | undefined;
}

const BACKFILL_PAGE = 200;

/** What tRPC sends: the event, tracked by its id so a reconnecting client resumes after it. */
const trackedEvent = (view: RealtimeEvent) => tracked(view.id, new EncodedEvent(view));

/**
 * Opens a subscription: registers with the feed and fixes the starting position *before* it
 * returns — so before tRPC tells the client the subscription is live, and nothing that
 * happens after that can be missed — then returns the stream of events.
 */
export async function openSubscription(request: SubscriptionRequest, options: SubscriptionOptions): Promise<AsyncGenerator<TrackedEnvelope<EncodedEvent>>> {
  const filter: FeedFilter = {
    tenantId: request.tenantId,
    ...(request.generationId ? { generationId: request.generationId } : {}),
    ...(request.batchId ? { batchId: request.batchId } : {}),
  };
  const buffer: EncodedEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const unsubscribe = await options.feed.subscribe({
    watch: { tenantId: request.tenantId, generationId: request.generationId, batchId: request.batchId },
    deliver(event) {
      if (buffer.length >= options.maxBuffered) overflowed = true;
      else buffer.push(event);
      wake?.();
    },
  });
  // A stream that is never read (the client left at once) must not stay registered.
  const onAbort = () => {
    unsubscribe();
    wake?.();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  // Where to start: after the client's last event; from the beginning for one generation or
  // batch (its whole history is short and useful); for a whole tenant, from now — a position
  // taken after registering, so the backfill covers what the feed had not dispatched yet.
  const resumeFrom = request.lastEventId ? decodePosition(request.lastEventId) : undefined;
  const start = resumeFrom ?? (request.generationId || request.batchId ? FEED_START : await currentFeedPosition(options.db));

  /** Why the stream must end with an error rather than quietly, if it must. */
  const endedFor = () => (options.signal?.reason instanceof DomainError ? options.signal.reason : undefined);

  return (async function* () {
    let last: FeedPosition = start;
    let lastEvent: RealtimeEvent | undefined;
    let state: GenerationState | undefined;
    try {
      for (;;) {
        const from = last;
        const page = await retryWhileDatabaseUnavailable(() => readFeed(options.db, from, BACKFILL_PAGE, filter), options.signal);
        const views = await retryWhileDatabaseUnavailable(() => toRealtimeEvents(options.db, page.events, options.publicUrl()), options.signal);
        for (const [index, view] of views.entries()) {
          yield trackedEvent(view);
          const raw = page.events[index]!;
          last = { xid: raw.xid, id: raw.id };
          lastEvent = view;
          state = view.state;
        }
        if (page.events.length < BACKFILL_PAGE) break;
      }

      // While a watched generation waits in the queue, its position goes out now and then. It
      // carries the id of the last real event, so resuming is unaffected.
      const queueUpdate = async (): Promise<RealtimeEvent | undefined> => {
        if (!options.queueUpdates || state !== 'queued' || !lastEvent) return undefined;
        // Only a progress hint: with the database away, this one is skipped; the next comes on time.
        const estimate = await options.queueUpdates.estimate().catch((error: unknown) => {
          if (isDatabaseUnavailable(error)) return null;
          throw error;
        });
        if (!estimate) return undefined;
        return { ...lastEvent, stage: 'queue.position', at: new Date().toISOString(), data: { ...estimate }, assets: undefined, batch: undefined };
      };
      const initial = await queueUpdate();
      if (initial) yield trackedEvent(initial);

      while (!options.signal?.aborted) {
        // A reader that does not keep up is cut off rather than buffered without bound:
        // events pile up here, or (tRPC sends without backpressure) in the socket's buffer.
        if (overflowed || (options.connection?.bufferedBytes() ?? 0) > options.maxSocketBufferBytes) {
          options.connection?.close(SLOW_CONSUMER_CLOSE_CODE, 'slow consumer: resume from the last event received');
          return;
        }
        const encoded = buffer.shift();
        if (!encoded) {
          const waitMs = options.queueUpdates && state === 'queued' ? options.queueUpdates.intervalMs : undefined;
          const timedOut = await new Promise<boolean>((resolve) => {
            const timer = waitMs === undefined ? undefined : setTimeout(() => resolve(true), waitMs);
            wake = () => {
              clearTimeout(timer);
              resolve(false);
            };
          });
          wake = undefined;
          if (timedOut) {
            const update = await queueUpdate();
            if (update) yield trackedEvent(update);
          }
          continue;
        }
        const { event, position } = encoded;
        if (!position || comparePositions(position, last) <= 0) continue; // the backfill sent it
        yield tracked(event.id, encoded);
        last = position;
        lastEvent = event;
        state = event.state;
      }
      const reason = endedFor();
      if (reason) throw reason;
    } catch (error) {
      const reason = endedFor();
      if (reason) throw reason;
      if (options.signal?.aborted) return; // the client left while a read was being retried: nobody to tell
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  })();
}
