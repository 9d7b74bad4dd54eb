// What the operator's overview reads across every tenant: generations in progress by state,
// how many ended in each of the last minutes, and each tenant's part of the provider's work.
// Each read is bounded by an index: in-progress rows by the partial indexes on queued and
// running work, recent ends by generations_finished (finished_at, final states only).
import { sql } from 'kysely';
import type { Db } from './schema.ts';

export interface InProgressCounts {
  /** Waiting for a create slot (queued, not dispatched). */
  waiting: number;
  /** Dispatched to the create phase, not yet running. */
  dispatched: number;
  running: number;
  /** Of the running, those with a prediction at the provider. */
  atProvider: number;
}

export async function countInProgress(db: Db): Promise<InProgressCounts> {
  const { rows } = await sql<{ waiting: string; dispatched: string; running: string; at_provider: string }>`
    SELECT
      count(*) FILTER (WHERE state = 'queued' AND dispatched_at IS NULL) AS waiting,
      count(*) FILTER (WHERE state = 'queued' AND dispatched_at IS NOT NULL) AS dispatched,
      count(*) FILTER (WHERE state = 'running') AS running,
      count(*) FILTER (WHERE state = 'running' AND prediction_id IS NOT NULL) AS at_provider
    FROM generations WHERE state IN ('queued', 'running')
  `.execute(db);
  const row = rows[0];
  return { waiting: Number(row?.waiting ?? 0), dispatched: Number(row?.dispatched ?? 0), running: Number(row?.running ?? 0), atProvider: Number(row?.at_provider ?? 0) };
}

export interface MinuteThroughput {
  /** The minute's start. */
  minute: Date;
  succeeded: number;
  failed: number;
  canceled: number;
}

/** Generations that ended in each of the last `minutes` minutes (this one included), oldest first; minutes with none count 0. */
export async function readThroughput(db: Db, minutes: number): Promise<MinuteThroughput[]> {
  const { rows } = await sql<{ minute: Date; succeeded: string; failed: string; canceled: string }>`
    WITH span AS (
      SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => ${minutes - 1}), date_trunc('minute', now()), interval '1 minute') AS minute
    ), ended AS (
      SELECT date_trunc('minute', finished_at) AS minute, state FROM generations
      WHERE state IN ('succeeded', 'failed', 'canceled') AND finished_at >= date_trunc('minute', now()) - make_interval(mins => ${minutes - 1})
    )
    SELECT span.minute,
      count(*) FILTER (WHERE ended.state = 'succeeded') AS succeeded,
      count(*) FILTER (WHERE ended.state = 'failed') AS failed,
      count(*) FILTER (WHERE ended.state = 'canceled') AS canceled
    FROM span LEFT JOIN ended ON ended.minute = span.minute
    GROUP BY span.minute ORDER BY span.minute
  `.execute(db);
  return rows.map((row) => ({ minute: row.minute, succeeded: Number(row.succeeded), failed: Number(row.failed), canceled: Number(row.canceled) }));
}

export interface TenantProviderUse {
  tenantId: string;
  tenantName: string;
  tier: string;
  /** Waiting for a create slot now. */
  waiting: number;
  /** Dispatched or running now, its own work (not served from another). */
  inProgress: number;
  /** Of them, with a prediction at the provider now. */
  atProvider: number;
  /** Its own provider work that ended within the window. */
  endedRecently: number;
}

/**
 * Each tenant with work in progress, or provider work that ended in the last `minutes`:
 * what it holds of the provider now and lately. Work served from cache or by joining is not
 * the provider's and is left out.
 */
export async function readTenantProviderUse(db: Db, minutes: number): Promise<TenantProviderUse[]> {
  const { rows } = await sql<{ tenant_id: string; name: string; tier: string; waiting: string; in_progress: string; at_provider: string; ended_recently: string }>`
    WITH work AS (
      SELECT tenant_id,
        count(*) FILTER (WHERE state = 'queued' AND dispatched_at IS NULL) AS waiting,
        count(*) FILTER (WHERE state = 'running' OR dispatched_at IS NOT NULL) AS in_progress,
        count(*) FILTER (WHERE state = 'running' AND prediction_id IS NOT NULL) AS at_provider,
        0::bigint AS ended_recently
      FROM generations WHERE state IN ('queued', 'running') AND served_from_id IS NULL
      GROUP BY tenant_id
      UNION ALL
      SELECT tenant_id, 0, 0, 0, count(*) FROM generations
      WHERE state IN ('succeeded', 'failed', 'canceled') AND finished_at >= now() - make_interval(mins => ${minutes}) AND prediction_id IS NOT NULL
      GROUP BY tenant_id
    )
    SELECT t.id AS tenant_id, t.name, t.tier, sum(w.waiting) AS waiting, sum(w.in_progress) AS in_progress, sum(w.at_provider) AS at_provider, sum(w.ended_recently) AS ended_recently
    FROM work w JOIN tenants t ON t.id = w.tenant_id
    GROUP BY t.id, t.name, t.tier
    ORDER BY sum(w.in_progress) + sum(w.ended_recently) DESC, t.name
    LIMIT 100
  `.execute(db);
  return rows.map((row) => ({
    tenantId: row.tenant_id,
    tenantName: row.name,
    tier: row.tier,
    waiting: Number(row.waiting),
    inProgress: Number(row.in_progress),
    atProvider: Number(row.at_provider),
    endedRecently: Number(row.ended_recently),
  }));
}
