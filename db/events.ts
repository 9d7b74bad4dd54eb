// Reading the event log as a feed, in (xid, id) order. An event is released to readers only
// when no transaction that might still commit an earlier event is running (xid below the
// snapshot's xmin), so every reader sees the same order, without gaps, and can resume from a
// position. See migrations/0003-event-feed.ts.
import { sql, type Kysely } from 'kysely';
import type { Database, GenerationEvent } from './schema.ts';

export interface FeedPosition {
  xid: string;
  id: string;
}

export const FEED_START: FeedPosition = { xid: '0', id: '0' };

/** `<xid>:<id>`: opaque to clients, who hand it back to resume. */
export function encodePosition(position: FeedPosition): string {
  return `${position.xid}:${position.id}`;
}

export function decodePosition(text: string): FeedPosition | undefined {
  const match = /^(\d{1,20}):(\d{1,19})$/.exec(text);
  return match?.[1] && match[2] ? { xid: match[1], id: match[2] } : undefined;
}

export function comparePositions(a: FeedPosition, b: FeedPosition): number {
  const byXid = BigInt(a.xid) - BigInt(b.xid);
  if (byXid !== 0n) return byXid < 0n ? -1 : 1;
  const byId = BigInt(a.id) - BigInt(b.id);
  return byId === 0n ? 0 : byId < 0n ? -1 : 1;
}

export interface FeedPage {
  /** Released events after the position, in feed order. */
  events: GenerationEvent[];
  /** Events exist past these that are not released yet (a writer is still running). */
  heldBack: boolean;
}

export interface FeedFilter {
  tenantId?: string;
  generationId?: string;
  batchId?: string;
}

export async function readFeed(db: Kysely<Database>, after: FeedPosition, limit: number, filter: FeedFilter = {}): Promise<FeedPage> {
  let query = db
    .selectFrom('generation_events')
    .selectAll()
    .select(sql<string>`pg_snapshot_xmin(pg_current_snapshot())`.as('horizon'))
    .where(sql<boolean>`(xid, id) > (${after.xid}::xid8, ${after.id}::bigint)`)
    .orderBy('xid')
    .orderBy('id')
    .limit(limit);
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  if (filter.generationId) query = query.where('generation_id', '=', filter.generationId);
  if (filter.batchId) query = query.where('batch_id', '=', filter.batchId);
  const rows = await query.execute();
  const events: GenerationEvent[] = [];
  for (const { horizon, ...event } of rows) {
    if (BigInt(event.xid) >= BigInt(horizon)) return { events, heldBack: true };
    events.push(event);
  }
  return { events, heldBack: false };
}

/** The newest released position: where a reader that wants only new events starts. */
export async function currentFeedPosition(db: Kysely<Database>): Promise<FeedPosition> {
  const row = await db
    .selectFrom('generation_events')
    .select(['xid', 'id'])
    .where(sql<boolean>`xid < pg_snapshot_xmin(pg_current_snapshot())`)
    .orderBy('xid', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ?? FEED_START;
}
