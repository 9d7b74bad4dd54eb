// One client's subscription: register with the feed first, then backfill from the table, then
// pass live events on — skipping any the backfill already sent. Positions are one total
// order, so "skip what is not after the last sent" is exact: every event once, in order.
import type { Kysely } from 'kysely';
import { FEED_START, comparePositions, decodePosition, readFeed, type FeedFilter, type FeedPosition } from '../../db/events.ts';
import type { Database } from '../../db/schema.ts';
import type { EventFeed } from './event-feed.ts';
import { toRealtimeEvents, type RealtimeEvent } from './event-view.ts';

export interface SubscriptionRequest {
  tenantId: string;
  generationId?: string;
  batchId?: string;
  /** Resume after this position (tRPC passes the last tracked id on reconnect). */
  lastEventId?: string | null;
}

export class SlowConsumerError extends Error {
  override name = 'SlowConsumerError';
}

export interface SubscriptionOptions {
  db: Kysely<Database>;
  feed: EventFeed;
  publicUrl: () => string;
  /** Live events buffered for one subscriber before it is cut off as too slow. */
  maxBuffered: number;
  signal: AbortSignal | undefined;
}

const BACKFILL_PAGE = 200;

export async function* subscribeToEvents(request: SubscriptionRequest, options: SubscriptionOptions): AsyncGenerator<RealtimeEvent> {
  const filter: FeedFilter = {
    tenantId: request.tenantId,
    ...(request.generationId ? { generationId: request.generationId } : {}),
    ...(request.batchId ? { batchId: request.batchId } : {}),
  };
  const matches = (event: RealtimeEvent) =>
    (!request.generationId || event.generationId === request.generationId) && (!request.batchId || event.batchId === request.batchId);

  const buffer: RealtimeEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const unsubscribe = await options.feed.subscribe({
    tenantId: request.tenantId,
    matches,
    deliver(event) {
      if (buffer.length >= options.maxBuffered) overflowed = true;
      else buffer.push(event);
      wake?.();
    },
  });
  const onAbort = () => wake?.();
  options.signal?.addEventListener('abort', onAbort);
  try {
    // Where to start: after the client's last event; from the beginning for one generation or
    // batch (its whole history is short and useful); from now for a whole tenant.
    const resumeFrom = request.lastEventId ? decodePosition(request.lastEventId) : undefined;
    let last: FeedPosition | undefined = resumeFrom ?? (request.generationId || request.batchId ? FEED_START : undefined);

    for (let from = last; from; ) {
      const page = await readFeed(options.db, from, BACKFILL_PAGE, filter);
      const views = await toRealtimeEvents(options.db, page.events, options.publicUrl());
      for (const [index, view] of views.entries()) {
        yield view;
        const raw = page.events[index]!;
        last = from = { xid: raw.xid, id: raw.id };
      }
      if (page.events.length < BACKFILL_PAGE) break;
    }

    while (!options.signal?.aborted) {
      if (overflowed) throw new SlowConsumerError(`more than ${options.maxBuffered} events waited for this subscriber; reconnect to resume from the last event received`);
      const event = buffer.shift();
      if (!event) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const position = decodePosition(event.id);
      if (!position || (last && comparePositions(position, last) <= 0)) continue; // the backfill sent it
      yield event;
      last = position;
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
