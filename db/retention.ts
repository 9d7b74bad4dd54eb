// Retention's statements (migration 0016). Each deletes at most `limit` rows and takes only
// the rows it deletes, skipping any another transaction holds, so the hot paths never wait
// on it for long; the caller loops with pauses between batches (jobs/retention/).
import { sql } from 'kysely';
import type { Db } from './schema.ts';

const FINAL_STATES = sql`('succeeded', 'failed', 'canceled')`;

/**
 * Finished generations that ended before `finishedBefore`, oldest first, with what cascades
 * from them (events, assets — whose keys become orphans —, and their ledger rows' link). A
 * generation that followers in flight are served from stays until they are done, and one an
 * identical request is looking up right now (its row locked) is skipped. Answers how many went.
 */
export async function pruneFinishedGenerations(db: Db, input: { finishedBefore: Date; limit: number }): Promise<number> {
  const result = await sql`
    DELETE FROM generations WHERE id IN (
      SELECT g.id FROM generations g
      WHERE g.state IN ${FINAL_STATES} AND g.finished_at < ${input.finishedBefore}
        AND NOT EXISTS (SELECT 1 FROM generations f WHERE f.served_from_id = g.id AND f.state IN ('queued', 'running'))
      ORDER BY g.finished_at
      LIMIT ${input.limit}
      FOR UPDATE OF g SKIP LOCKED
    )
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface EventPage {
  deleted: number;
  /** Where the next page starts (ids after this one); undefined: no event past it is old enough. */
  next: string | undefined;
}

/**
 * Events older than `before` of generations that are final, among the `limit` events after
 * `after` in id order. Ids follow time, so the walk starts at the oldest and ends at the first
 * event that is new enough: the primary key is the only index it needs, and the events of work
 * still in progress (kept) are stepped over rather than read again and again.
 */
export async function pruneOldEvents(db: Db, input: { after: string; before: Date; limit: number }): Promise<EventPage> {
  const { rows } = await sql<{ deleted: string; last_id: string | null; reached_new: boolean | null; seen: string }>`
    WITH page AS (
      SELECT id, generation_id, at FROM generation_events WHERE id > ${input.after}::bigint ORDER BY id LIMIT ${input.limit}
    ),
    gone AS (
      DELETE FROM generation_events WHERE id IN (
        SELECT page.id FROM page JOIN generations g ON g.id = page.generation_id
        WHERE page.at < ${input.before} AND g.state IN ${FINAL_STATES}
      )
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT max(id)::text FROM page) AS last_id,
      (SELECT bool_or(at >= ${input.before}) FROM page) AS reached_new, (SELECT count(*) FROM page) AS seen
  `.execute(db);
  const row = rows[0];
  const deleted = Number(row?.deleted ?? 0);
  const done = !row?.last_id || row.reached_new === true || Number(row.seen) < input.limit;
  return { deleted, next: done ? undefined : (row.last_id ?? undefined) };
}

/** Batches created before `createdBefore` none of whose generations are left. */
export async function pruneEmptyBatches(db: Db, input: { createdBefore: Date; limit: number }): Promise<number> {
  const result = await sql`
    DELETE FROM batches WHERE id IN (
      SELECT b.id FROM batches b
      WHERE b.created_at < ${input.createdBefore} AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.batch_id = b.id)
      ORDER BY b.created_at
      LIMIT ${input.limit}
      FOR UPDATE OF b SKIP LOCKED
    )
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface OrphanClaim {
  /** Keys whose objects are to be deleted now: no asset or image source names them. */
  keys: string[];
  /** Candidates looked at (deleted ones, and those an asset or source names again, which stop being candidates). */
  seen: number;
}

/**
 * Takes up to `limit` orphaned keys that have been orphans since before `orphanedBefore`:
 * those an asset or an image source names (again) stop being orphans; the rest are marked deleted (tombstones)
 * and answered. Run it in a transaction and delete their objects before it commits: the rows
 * stay locked meanwhile, so a worker recording one of these keys waits, then finds the
 * tombstone and stores its bytes again.
 */
export async function claimOrphanedKeys(db: Db, input: { orphanedBefore: Date; limit: number }): Promise<OrphanClaim> {
  const { rows } = await sql<{ seen: string; keys: string[] | null }>`
    WITH picked AS (
      SELECT o.storage_key,
        EXISTS (SELECT 1 FROM assets a WHERE a.storage_key = o.storage_key)
          OR EXISTS (SELECT 1 FROM image_sources s WHERE s.storage_key = o.storage_key) AS named
      FROM storage_orphans o
      WHERE o.object_deleted_at IS NULL AND o.since < ${input.orphanedBefore}
      ORDER BY o.since
      LIMIT ${input.limit}
      FOR UPDATE OF o SKIP LOCKED
    ),
    named_again AS (
      DELETE FROM storage_orphans WHERE storage_key IN (SELECT storage_key FROM picked WHERE named)
    ),
    marked AS (
      UPDATE storage_orphans SET object_deleted_at = now()
      WHERE storage_key IN (SELECT storage_key FROM picked WHERE NOT named)
      RETURNING storage_key
    )
    SELECT (SELECT count(*) FROM picked) AS seen, (SELECT array_agg(storage_key) FROM marked) AS keys
  `.execute(db);
  return { keys: rows[0]?.keys ?? [], seen: Number(rows[0]?.seen ?? 0) };
}

/** Tombstones of objects deleted before `deletedBefore`: no worker still in flight can need them. */
export async function pruneTombstones(db: Db, input: { deletedBefore: Date; limit: number }): Promise<number> {
  const result = await sql`
    DELETE FROM storage_orphans WHERE storage_key IN (
      SELECT storage_key FROM storage_orphans WHERE object_deleted_at < ${input.deletedBefore}
      ORDER BY object_deleted_at LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    )
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Provider files (migration 0019) that expired before `expiredBefore`: the provider has deleted them, and the next use of the image uploads it again. */
export async function pruneExpiredProviderFiles(db: Db, input: { expiredBefore: Date; limit: number }): Promise<number> {
  const result = await sql`
    DELETE FROM provider_files WHERE (scope, content_hash) IN (
      SELECT scope, content_hash FROM provider_files WHERE expires_at < ${input.expiredBefore}
      ORDER BY expires_at LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    )
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
