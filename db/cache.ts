// Cache and coalescing (migration 0014): a generation served from an identical one of its
// tenant — an earlier success, or work still in flight that it follows. The first lookup is
// part of the insert (generations.ts); these are the worker's side of it.
import { sql } from 'kysely';
import { DISPATCH_CHANNEL } from './dispatch.ts';
import type { Asset, Db, ServedFromKind } from './schema.ts';

export interface ServedFrom {
  kind: ServedFromKind;
  generationId: string;
}

/**
 * Before its create, an attempt that may reuse looks once more for identical work: requests
 * queued in transactions that overlapped each other's could not see each other at insert. It
 * follows the tenant's success of the same input, or its oldest identical work in flight that
 * is older than itself (so two never follow each other), and goes back to waiting — for that
 * one, not for a slot (dispatched_at cleared: it no longer counts against its tenant's cap).
 * Only an attempt that never sent a create (nothing at the provider can be its own). The row
 * followed is locked FOR SHARE, as at insert, so it cannot end unseen. Undefined: its own work.
 */
export async function followIdentical(db: Db, input: { id: string; attempt: number }): Promise<ServedFrom | undefined> {
  const { rows } = await sql<{ served_from_id: string; served_from_kind: ServedFromKind }>`
    WITH me AS (
      SELECT id, tenant_id, fingerprint, created_at FROM generations
      WHERE id = ${input.id} AND attempt = ${input.attempt} AND state = 'running' AND may_reuse
        AND fingerprint IS NOT NULL AND prediction_id IS NULL AND create_sent_attempt IS NULL
    ),
    leader AS (
      SELECT g.id, g.state FROM generations g JOIN me ON g.tenant_id = me.tenant_id AND g.fingerprint = me.fingerprint
      WHERE g.served_from_id IS NULL AND g.id <> me.id
        AND (g.state = 'succeeded' OR (g.state IN ('queued', 'running') AND (g.created_at, g.id) < (me.created_at, me.id)))
      ORDER BY g.state = 'succeeded' DESC, g.created_at, g.id
      LIMIT 1
      FOR SHARE OF g
    ),
    moved AS (
      UPDATE generations SET state = 'queued', dispatched_at = NULL, started_at = NULL, updated_at = now(),
        served_from_id = leader.id, served_from_kind = CASE WHEN leader.state = 'succeeded' THEN 'cache' ELSE 'joined' END,
        stage = CASE WHEN leader.state = 'succeeded' THEN 'cache.hit' ELSE 'cache.joined' END
      FROM leader
      WHERE generations.id = ${input.id} AND generations.attempt = ${input.attempt} AND generations.state = 'running'
      RETURNING generations.id, generations.tenant_id, generations.batch_id, generations.subject,
        generations.served_from_id, generations.served_from_kind, generations.stage
    ),
    event AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, stage, jsonb_build_object('generationId', served_from_id, 'beforeCreate', true) FROM moved
    )
    SELECT served_from_id, served_from_kind FROM moved
  `.execute(db);
  const row = rows[0];
  return row && { kind: row.served_from_kind, generationId: row.served_from_id };
}

/**
 * A generation served from a success whose original image is no longer stored (pruned, or lost
 * with its store) becomes its own work: back to waiting at the place in its lane it was queued
 * at, its reservation topped up from the cache price to `reserve` (its model's full reservation),
 * and the success it was served from forgotten as a cache source, so no later request is sent to
 * it. A metered tenant whose balance cannot cover the top-up fails the statement
 * (`isInsufficientCredit`). False when the attempt no longer owns it.
 */
export async function serveOnItsOwn(db: Db, input: { id: string; attempt: number; reserve: number }): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`
    WITH me AS (
      SELECT id, tenant_id, batch_id, subject, model, served_from_id,
        CASE WHEN reserved > 0 THEN greatest(${input.reserve}::bigint - reserved, 0) ELSE 0 END AS top_up
      FROM generations
      WHERE id = ${input.id} AND attempt = ${input.attempt} AND state = 'running' AND served_from_id IS NOT NULL
      FOR UPDATE
    ),
    held AS (
      UPDATE credit_balances b SET available = b.available - me.top_up, held = b.held + me.top_up
      FROM me WHERE b.tenant_id = me.tenant_id AND me.top_up > 0
    ),
    ledger AS (
      INSERT INTO credit_ledger (tenant_id, generation_id, kind, model, available_delta, held_delta)
      SELECT tenant_id, id, 'reserve', model, -top_up, top_up FROM me WHERE top_up > 0
    ),
    forgotten AS (
      UPDATE generations SET fingerprint = NULL, updated_at = now()
      FROM me WHERE generations.id = me.served_from_id AND generations.state = 'succeeded'
    ),
    moved AS (
      UPDATE generations SET state = 'queued', dispatched_at = NULL, started_at = NULL, updated_at = now(),
        served_from_id = NULL, served_from_kind = NULL, reserved = generations.reserved + me.top_up, stage = 'cache.released'
      FROM me WHERE generations.id = me.id
      RETURNING generations.id
    ),
    event AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'cache.released', jsonb_build_object('generationId', served_from_id, 'because', 'original_missing') FROM me
    )
    -- Waking the dispatchers (at commit) is part of the statement: it is waiting work again.
    SELECT id, pg_notify(${DISPATCH_CHANNEL}, '') FROM moved
  `.execute(db);
  return rows.length > 0;
}

/** The generations waiting for this one to succeed: they are served from it next. */
export async function waitingFollowers(db: Db, generationId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('generations')
    .select('id')
    .where('served_from_id', '=', generationId)
    .where('state', '=', 'queued')
    .where('served_from_kind', '=', 'joined')
    .execute();
  return rows.map((row) => row.id);
}

/** The provider's images of a generation (one per output, in output order), as stored: every success keeps them. */
export async function findOriginalAssets(db: Db, generationId: string): Promise<Asset[]> {
  return db.selectFrom('assets').selectAll().where('generation_id', '=', generationId).where('kind', '=', 'original').orderBy('output_index').execute();
}

/** A tenant's generations served from another, by how (the ops stats). */
export async function countServedFrom(db: Db, tenantId: string): Promise<Record<ServedFromKind, number>> {
  const rows = await db
    .selectFrom('generations')
    .select(['served_from_kind', (eb) => eb.fn.countAll<string>().as('count')])
    .where('tenant_id', '=', tenantId)
    .where('served_from_kind', 'is not', null)
    .groupBy('served_from_kind')
    .execute();
  const counts: Record<ServedFromKind, number> = { cache: 0, joined: 0 };
  for (const row of rows) if (row.served_from_kind) counts[row.served_from_kind] = Number(row.count);
  return counts;
}
