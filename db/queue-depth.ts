// How deep the queues are and how long their oldest entries have waited, for monitoring: pg-boss
// has no exporter, so its job table is read directly (the states its live index covers, so the
// archive of finished jobs is never scanned), and Kiln's own queue — generations waiting for a
// create slot, which live in the generations table, not in pg-boss — beside it.
import { sql } from 'kysely';
import { WAITING } from './dispatch.ts';
import type { Db } from './schema.ts';

/** queued: due and not yet fetched; scheduled: due later (polls, retries, deferrals); active: running. */
export type QueueDepthState = 'queued' | 'scheduled' | 'active';

export interface QueueDepth {
  queue: string;
  state: QueueDepthState;
  jobs: number;
  /** Seconds since the oldest became due (queued) or started (active); undefined for scheduled work. */
  oldestSeconds: number | undefined;
}

/** The name Kiln's own queue of waiting generations is reported under, beside pg-boss's queues. */
export const DISPATCH_QUEUE_NAME = 'kiln-dispatch';

/** Depth and age of pg-boss's queues `names` (in schema `schema`), and of the generations waiting for the dispatcher. */
export async function readQueueDepths(db: Db, schema: string, names: readonly string[]): Promise<QueueDepth[]> {
  const { rows } = await sql<{ queue: string; state: QueueDepthState; jobs: string; oldest_seconds: number | null }>`
    SELECT name AS queue,
      CASE WHEN state = 'active' THEN 'active' WHEN start_after > now() THEN 'scheduled' ELSE 'queued' END AS state,
      count(*) AS jobs,
      extract(epoch FROM now() - min(CASE WHEN state = 'active' THEN started_on WHEN start_after <= now() THEN start_after END))::float8 AS oldest_seconds
    FROM ${sql.table(`${schema}.job`)}
    WHERE name = ANY(${names}::text[]) AND state IN ('created', 'retry', 'active')
    GROUP BY 1, 2
    UNION ALL
    SELECT ${DISPATCH_QUEUE_NAME}, 'queued', count(*), extract(epoch FROM now() - min(g.created_at))::float8
    FROM generations g WHERE ${WAITING('g')}
  `.execute(db);
  return rows.map((row) => ({ queue: row.queue, state: row.state, jobs: Number(row.jobs), oldestSeconds: row.oldest_seconds ?? undefined }));
}
