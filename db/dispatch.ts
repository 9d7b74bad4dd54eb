// The dispatcher's queries (see jobs/dispatch/): the waiting work of each lane, each tenant's
// work in progress, the shared create budget booked a short stretch ahead, and the marks that
// a generation was handed on. All run in the dispatcher's one transaction per tick, so a
// dispatcher that dies mid-tick leaves nothing half-done.
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { BudgetClock } from './gcra.ts';
import type { Database } from './schema.ts';

/** One dispatcher at a time across all processes: a lock held for one tick's transaction. */
const DISPATCH_LOCK = 0x6b696c6e_01; // "kiln" + 1

type SqlValue = RawBuilder<unknown> | ReturnType<typeof sql.ref>;

/**
 * A generation's lane, the one place that says what it is: its tenant, and within a tenant that
 * shares by subject (`tenants.share_by`), its subject (requests that name none share one lane).
 * `laneSubject` gives the subject part (null for a tenant shared by tenant), `laneKey` the key.
 */
export function laneSubject(generation: string, tenant: string): RawBuilder<string | null> {
  return sql<string | null>`(CASE WHEN ${sql.ref(`${tenant}.share_by`)} = 'subject' THEN ${sql.ref(`${generation}.subject`)} END)`;
}

export function laneKey(tenantId: SqlValue, subject: SqlValue): RawBuilder<string> {
  return sql<string>`('t:' || ${tenantId}::text || coalesce(':s:' || ${subject}, ''))`;
}

/**
 * A lane's weight: its tenant's (by tier), split evenly among the tenant's lanes with waiting
 * work — so sharing by subject divides a tenant's turn among its subjects, never multiplies it.
 */
export function laneWeight(tenantWeight: number, lanesOfTenant: number): number {
  return tenantWeight / Math.max(1, lanesOfTenant);
}

/**
 * Also lets the tick commit without waiting for its WAL flush (about a millisecond of every
 * pickup). That is safe: a crash loses the whole tick at most — no generation is marked without
 * its job, nor the budget booked without them — and no create can go out on a lost tick, since
 * the create phase first commits `startAttempt` durably, which flushes the WAL before it,
 * the tick's included.
 */
export async function tryDispatchLock(trx: Transaction<Database>): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`
    SELECT set_config('synchronous_commit', 'off', true), pg_try_advisory_xact_lock(${DISPATCH_LOCK}::bigint) AS locked
  `.execute(trx);
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
  /** The tenant's lanes with waiting work, this one included. */
  lanesOfTenant: number;
  inProgress: number;
  /** The first `perLane` of them, in dispatch order. */
  waiting: string[];
  /** The dispatcher's virtual clock (the same in every row). */
  clock: number;
}

/**
 * Lanes with waiting work: one per tenant, or one per subject of a tenant shared by subject. Within a lane the order is the aged priority of
 * jobs/dispatch/select.ts's `agedOrderKey`: created_at less `agingSeconds` per priority point,
 * then id (ids are time-ordered, in submission order within a batch).
 */
export async function waitingLanes(trx: Transaction<Database>, options: { perLane: number; agingSeconds: number }): Promise<WaitingLaneRow[]> {
  const { rows } = await sql<{ lane: string; tenant_id: string; tier: string; pass: number | null; waiting_count: string; lanes_of_tenant: string; in_progress: string; waiting: string[]; clock: number }>`
    WITH lanes AS (
      SELECT g.tenant_id, ${laneSubject('g', 't')} AS subject, count(*) AS waiting_count,
        count(*) OVER (PARTITION BY g.tenant_id) AS lanes_of_tenant
      FROM generations g JOIN tenants t ON t.id = g.tenant_id
      WHERE g.state = 'queued' AND g.dispatched_at IS NULL
      GROUP BY 1, 2
    )
    SELECT ${laneKey(sql.ref('l.tenant_id'), sql.ref('l.subject'))} AS lane, l.tenant_id, t.tier, d.pass, l.waiting_count, l.lanes_of_tenant,
      (SELECT clock FROM dispatch_clock WHERE id = 1) AS clock,
      (SELECT count(*) FROM generations p
        WHERE p.tenant_id = l.tenant_id AND p.state IN ('queued', 'running') AND p.dispatched_at IS NOT NULL) AS in_progress,
      ARRAY(SELECT q.id FROM generations q
        WHERE q.tenant_id = l.tenant_id AND q.state = 'queued' AND q.dispatched_at IS NULL
          AND ${laneSubject('q', 't')} IS NOT DISTINCT FROM l.subject
        ORDER BY q.created_at - make_interval(secs => q.priority * ${options.agingSeconds}::float8), q.id
        LIMIT ${options.perLane}) AS waiting
    FROM lanes l
    JOIN tenants t ON t.id = l.tenant_id
    LEFT JOIN dispatch_lanes d ON d.lane = ${laneKey(sql.ref('l.tenant_id'), sql.ref('l.subject'))}
  `.execute(trx);
  return rows.map((row) => ({
    lane: row.lane,
    tenantId: row.tenant_id,
    tier: row.tier,
    pass: row.pass,
    waitingCount: Number(row.waiting_count),
    lanesOfTenant: Number(row.lanes_of_tenant),
    inProgress: Number(row.in_progress),
    waiting: row.waiting,
    clock: row.clock,
  }));
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

/**
 * The tick's writes in one statement (one round trip, which pickup latency feels): books `slots`
 * on the budget (its clock as gcra.ts's reserveMany left it), marks the generations as handed on
 * — answering those still queued (a cancel may have come first) — stores the lanes' new passes
 * and the clock, and forgets lanes whose pass the clock has passed (they start at the clock anyway).
 */
export async function recordDispatch(
  trx: Transaction<Database>,
  input: { budget: string; budgetClock: BudgetClock; slots: readonly number[]; ids: readonly string[]; passes: ReadonlyMap<string, number>; clock: number },
): Promise<{ id: string; priority: number }[]> {
  const lanes = [...input.passes.keys()];
  const passes = [...input.passes.values()];
  const { rows } = await sql<{ id: string; priority: number }>`
    WITH booked AS (
      UPDATE provider_rate_limits
      SET tat = ${new Date(input.budgetClock.tat)}, last_slot = ${new Date(Math.max(...input.slots))}, granted = granted + ${input.slots.length}
      WHERE name = ${input.budget}
    ),
    marked AS (
      UPDATE generations SET dispatched_at = now()
      WHERE id = ANY(${input.ids}::uuid[]) AND state = 'queued' AND dispatched_at IS NULL
      RETURNING id, priority
    ),
    passes AS (
      INSERT INTO dispatch_lanes (lane, pass)
      SELECT * FROM unnest(${lanes}::text[], ${passes}::float8[])
      ON CONFLICT (lane) DO UPDATE SET pass = excluded.pass
    ),
    clock AS (
      UPDATE dispatch_clock SET clock = ${input.clock} WHERE id = 1
    ),
    forgotten AS (
      DELETE FROM dispatch_lanes WHERE pass <= ${input.clock} AND NOT (lane = ANY(${lanes}::text[]))
    )
    SELECT id, priority FROM marked
  `.execute(trx);
  return rows;
}

