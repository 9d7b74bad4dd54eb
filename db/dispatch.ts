// The dispatcher's queries (see jobs/dispatch/): the waiting work of each lane, each tenant's
// work in progress, the shared create budget booked a short stretch ahead, and the marks that
// a generation was handed on. All run in the dispatcher's one transaction per tick, so a
// dispatcher that dies mid-tick leaves nothing half-done.
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { BudgetClock } from './gcra.ts';
import type { Database } from './schema.ts';

/** One dispatcher at a time across all processes: a lock held for one tick's transaction. */
const DISPATCH_LOCK = 0x6b696c6e_01; // "kiln" + 1

/**
 * A generation's lane, from its tenant: one lane per tenant today. The one place that says so:
 * a lane per (tenant, subject) would change this expression (and the grouping below), nothing
 * in jobs/dispatch/.
 */
export function laneKey(tenantId: RawBuilder<unknown> | ReturnType<typeof sql.ref>): RawBuilder<string> {
  return sql<string>`('t:' || ${tenantId}::text)`;
}

export async function tryDispatchLock(trx: Transaction<Database>): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${DISPATCH_LOCK}::bigint) AS locked`.execute(trx);
  return rows[0]?.locked === true;
}

/** Wakes the dispatchers (they LISTEN on this channel) when new work is queued; sent at commit. */
export const DISPATCH_CHANNEL = 'kiln_dispatch';

export async function notifyDispatcher(trx: Transaction<Database>): Promise<void> {
  await sql`SELECT pg_notify(${DISPATCH_CHANNEL}, '')`.execute(trx);
}

export interface WaitingLaneRow {
  lane: string;
  tenantId: string;
  tier: string;
  pass: number | null;
  /** Undispatched, queued generations in the lane. */
  waitingCount: number;
  inProgress: number;
  /** The first `perLane` of them, in dispatch order. */
  waiting: string[];
}

/**
 * Lanes with waiting work: today one per tenant. Within a lane the order is the aged priority of
 * jobs/dispatch/select.ts's `agedOrderKey`: created_at less `agingSeconds` per priority point,
 * then id (ids are time-ordered, in submission order within a batch).
 */
export async function waitingLanes(trx: Transaction<Database>, options: { perLane: number; agingSeconds: number }): Promise<WaitingLaneRow[]> {
  const { rows } = await sql<{ lane: string; tenant_id: string; tier: string; pass: number | null; waiting_count: string; in_progress: string; waiting: string[] }>`
    WITH lanes AS (
      SELECT tenant_id, count(*) AS waiting_count
      FROM generations WHERE state = 'queued' AND dispatched_at IS NULL
      GROUP BY tenant_id
    )
    SELECT ${laneKey(sql.ref('l.tenant_id'))} AS lane, l.tenant_id, t.tier, d.pass, l.waiting_count,
      (SELECT count(*) FROM generations p
        WHERE p.tenant_id = l.tenant_id AND p.state IN ('queued', 'running') AND p.dispatched_at IS NOT NULL) AS in_progress,
      ARRAY(SELECT q.id FROM generations q
        WHERE q.tenant_id = l.tenant_id AND q.state = 'queued' AND q.dispatched_at IS NULL
        ORDER BY q.created_at - make_interval(secs => q.priority * ${options.agingSeconds}::float8), q.id
        LIMIT ${options.perLane}) AS waiting
    FROM lanes l
    JOIN tenants t ON t.id = l.tenant_id
    LEFT JOIN dispatch_lanes d ON d.lane = ${laneKey(sql.ref('l.tenant_id'))}
  `.execute(trx);
  return rows.map((row) => ({
    lane: row.lane,
    tenantId: row.tenant_id,
    tier: row.tier,
    pass: row.pass,
    waitingCount: Number(row.waiting_count),
    inProgress: Number(row.in_progress),
    waiting: row.waiting,
  }));
}

export async function readDispatchClock(trx: Transaction<Database>): Promise<number> {
  const row = await trx.selectFrom('dispatch_clock').select('clock').where('id', '=', 1).forUpdate().executeTakeFirstOrThrow();
  return row.clock;
}

/** Stores the lanes' new passes and the clock; forgets lanes whose pass the clock has passed (they start at the clock anyway). */
export async function saveDispatchState(trx: Transaction<Database>, passes: ReadonlyMap<string, number>, clock: number): Promise<void> {
  if (passes.size > 0) {
    await trx
      .insertInto('dispatch_lanes')
      .values([...passes].map(([lane, pass]) => ({ lane, pass })))
      .onConflict((conflict) => conflict.column('lane').doUpdateSet((eb) => ({ pass: eb.ref('excluded.pass') })))
      .execute();
  }
  await trx.updateTable('dispatch_clock').set({ clock }).where('id', '=', 1).execute();
  await trx.deleteFrom('dispatch_lanes').where('pass', '<=', clock).execute();
}

/** The budget's row, locked until the tick commits, with the database's clock (ms since the epoch). */
export async function lockBudget(trx: Transaction<Database>, name: string): Promise<{ clock: BudgetClock; now: number } | undefined> {
  const row = await trx
    .selectFrom('provider_rate_limits')
    .select(['tat', 'paused_until', sql<Date>`statement_timestamp()`.as('now')])
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
  if (!row) return undefined;
  return { clock: { tat: row.tat.getTime(), pausedUntil: row.paused_until.getTime() }, now: row.now.getTime() };
}

/** Books `slots` (ms since the epoch) on the budget: its clock moves on as gcra.ts's reserveMany said. */
export async function bookBudget(trx: Transaction<Database>, name: string, clock: BudgetClock, slots: readonly number[]): Promise<void> {
  if (slots.length === 0) return;
  await sql`
    UPDATE provider_rate_limits
    SET tat = ${new Date(clock.tat)}, last_slot = ${new Date(Math.max(...slots))}, granted = granted + ${slots.length}
    WHERE name = ${name}
  `.execute(trx);
}

/** Marks generations as handed on; answers those still queued (a cancel may have come first). */
export async function markDispatched(trx: Transaction<Database>, ids: readonly string[]): Promise<{ id: string; priority: number }[]> {
  if (ids.length === 0) return [];
  return trx
    .updateTable('generations')
    .set({ dispatched_at: sql<Date>`now()` })
    .where('id', 'in', ids)
    .where('state', '=', 'queued')
    .where('dispatched_at', 'is', null)
    .returning(['id', 'priority'])
    .execute();
}
