// The dispatcher's queries (see jobs/dispatch/): the waiting work of each lane, each tenant's
// work in progress, the shared create budget booked a short stretch ahead, and the marks that
// a generation was handed on. All run in the dispatcher's one transaction per tick, so a
// dispatcher that dies mid-tick leaves nothing half-done.
import { sql, type RawBuilder, type Transaction } from 'kysely';
import { PREPARED } from './database.ts';
import type { BudgetClock } from './gcra.ts';
import type { Database } from './schema.ts';

/** One dispatcher at a time across all processes: a lock held for one tick's transaction. */
const DISPATCH_LOCK = 0x6b696c6e_01; // "kiln" + 1

/**
 * A lane's weight: its tenant's (by tier), split evenly among the tenant's lanes with waiting
 * work — so sharing by subject divides a tenant's turn among its subjects, never multiplies it.
 */
export function laneWeight(tenantWeight: number, lanesOfTenant: number): number {
  return tenantWeight / Math.max(1, lanesOfTenant);
}

/** Wakes the dispatchers (they LISTEN on this channel) when new work is queued; sent at commit. */
export const DISPATCH_CHANNEL = 'kiln_dispatch';

export async function notifyDispatcher(trx: Transaction<Database>): Promise<void> {
  await sql`SELECT pg_notify(${DISPATCH_CHANNEL}, '')`.execute(trx);
}

/** Queued and not handed on: waiting work, and followers (which wait for the generation they follow, not for a slot). */
const UNDISPATCHED = (alias: string) => `${alias}.state = 'queued' AND ${alias}.dispatched_at IS NULL`;

/**
 * Undispatched work waiting its turn; every index of the waiting work has this predicate. A
 * follower (served_from_id set, see migration 0014) is not waiting work: it never gets a slot;
 * nor is a held generation (awaiting its input or its parts, migration 0023) until it is released.
 */
export const WAITING = (alias: string) => sql.raw(`${UNDISPATCHED(alias)} AND ${alias}.served_from_id IS NULL AND ${alias}.awaiting IS NULL`);

/**
 * The lanes with waiting work, as CTEs of a `WITH RECURSIVE` statement, in the one place that
 * says what a lane is: a tenant; or, for a tenant that shares by subject (`tenants.share_by`),
 * each subject it named, plus one lane for its requests that named none. `lane` has
 * (tenant_id, subject, kind, key). Lanes are found by skipping through the waiting indexes —
 * one probe per lane — rather than by counting every waiting row, so a tick costs the same
 * behind 50 waiting generations as behind 50,000. `gate` (a boolean SQL expression) can stop
 * the search before it starts (the dispatcher's lock).
 */
export function laneCtes(gate: RawBuilder<boolean>): RawBuilder<unknown> {
  return sql`
    waiting_tenant AS (
      (SELECT g.tenant_id FROM generations g WHERE ${WAITING('g')} AND ${gate} ORDER BY g.tenant_id LIMIT 1)
      UNION ALL
      SELECT (SELECT g.tenant_id FROM generations g WHERE ${WAITING('g')} AND g.tenant_id > w.tenant_id ORDER BY g.tenant_id LIMIT 1)
      FROM waiting_tenant w WHERE w.tenant_id IS NOT NULL
    ),
    by_subject AS (
      SELECT t.id AS tenant_id FROM waiting_tenant w JOIN tenants t ON t.id = w.tenant_id WHERE t.share_by = 'subject'
    ),
    named AS (
      SELECT b.tenant_id, (SELECT g.subject FROM generations g
        WHERE ${WAITING('g')} AND g.tenant_id = b.tenant_id AND g.subject IS NOT NULL ORDER BY g.subject LIMIT 1) AS subject
      FROM by_subject b
      UNION ALL
      SELECT n.tenant_id, (SELECT g.subject FROM generations g
        WHERE ${WAITING('g')} AND g.tenant_id = n.tenant_id AND g.subject > n.subject ORDER BY g.subject LIMIT 1)
      FROM named n WHERE n.subject IS NOT NULL
    ),
    lane_of AS (
      SELECT w.tenant_id, NULL::text AS subject, 'tenant' AS kind
        FROM waiting_tenant w JOIN tenants t ON t.id = w.tenant_id WHERE t.share_by = 'tenant'
      UNION ALL
      SELECT n.tenant_id, n.subject, 'subject' FROM named n WHERE n.subject IS NOT NULL
      UNION ALL
      SELECT b.tenant_id, NULL, 'unnamed' FROM by_subject b
        WHERE EXISTS (SELECT 1 FROM generations g WHERE ${WAITING('g')} AND g.tenant_id = b.tenant_id AND g.subject IS NULL)
    ),
    lane AS (
      SELECT l.*, ('t:' || l.tenant_id::text || coalesce(':s:' || l.subject, '')) AS key FROM lane_of l
    )`;
}

/**
 * The waiting generations of lane `l` (a row of laneCtes' `lane`) for which `where` holds, as a
 * subquery of (id, dispatch_order) to select from: each kind of lane reads its own index, and
 * the lane's kind stops the other two before they start. `limit` bounds each read.
 */
export function inLane(l: string, where: RawBuilder<boolean>, limit: RawBuilder<unknown> | number | null): RawBuilder<unknown> {
  const lane = sql.raw(l);
  const bound = limit === null ? sql`` : sql`LIMIT ${limit}`;
  const branch = (kind: string, subject: RawBuilder<unknown>) => sql`
    (SELECT q.id, q.dispatch_order FROM generations q
      WHERE ${lane}.kind = ${kind} AND ${WAITING('q')} AND q.tenant_id = ${lane}.tenant_id ${subject} AND ${where}
      ORDER BY q.dispatch_order, q.id ${bound})`;
  return sql`(${branch('tenant', sql``)} UNION ALL ${branch('subject', sql`AND q.subject = ${lane}.subject`)} UNION ALL ${branch('unnamed', sql`AND q.subject IS NULL`)})`;
}

export interface WaitingLaneRow {
  lane: string;
  tenantId: string;
  tier: string;
  pass: number | null;
  /** The tenant's lanes with waiting work, this one included. */
  lanesOfTenant: number;
  /** The tenant's generations dispatched or running (counted up to its cap). */
  inProgress: number;
  /** Its cap on those: its own, or the configured default. */
  cap: number;
  /** The first `perLane` waiting generations, in dispatch order. */
  waiting: string[];
}

export interface DispatchState {
  /** This transaction holds the dispatch lock: one dispatcher at a time across all processes. */
  leader: boolean;
  /** The dispatcher's virtual clock. */
  clock: number;
  /** The budget's row, locked until the tick commits, and the database's clock (ms since the epoch); only when work waits. */
  budget: { clock: BudgetClock; now: number } | undefined;
  /** Lanes of tenants under their cap, lowest turn first, at most `maxLanes`. */
  lanes: WaitingLaneRow[];
  /** Waiting generations whose caller's deadline has passed (at most `perLane`): failed, never sent. */
  expired: string[];
}

/**
 * What a tick needs, in one statement (one round trip, which pickup latency feels): the dispatch
 * lock, the lanes with their head of waiting work and their tenants' load, the dispatcher's
 * clock, the create budget's row (locked), and waiting work past its deadline.
 *
 * The lock is transaction-level, so a dead dispatcher holds nothing; the statement also lets the
 * tick commit without waiting for its WAL flush (about a millisecond of every pickup). That is
 * safe: a crash loses the whole tick at most — no generation is marked without its job, nor the
 * budget booked without them — and no create can go out on a lost tick, since the create phase
 * first commits `startAttempt` durably, which flushes the WAL before it, the tick's included.
 *
 * Prepared once per connection (db/database.ts): planning it costs more than running it.
 *
 * Only the first `maxLanes` lanes by turn (lowest pass first, as select.ts serves them) are read
 * with their work: a tick of n slots serves no lane beyond the n-th.
 */
export async function readDispatchState(
  trx: Transaction<Database>,
  options: { budget: string; perLane: number; maxLanes: number; defaultCap: number },
): Promise<DispatchState> {
  const { rows } = await sql<{ locked: boolean; clock: number; tat: Date | null; paused_until: Date | null; now: Date; lanes: WaitingLaneRow[] | null; expired: string[] }>`${PREPARED}
    WITH RECURSIVE
    lock AS (
      SELECT set_config('synchronous_commit', 'off', true) AS commit_mode, pg_try_advisory_xact_lock(${DISPATCH_LOCK}::bigint) AS locked
    ),
    ${laneCtes(sql<boolean>`(SELECT locked FROM lock)`)},
    clock AS (SELECT clock FROM dispatch_clock WHERE id = 1),
    tenant_load AS (
      SELECT t.id AS tenant_id, t.tier, coalesce(t.in_progress_cap, ${options.defaultCap}::int) AS cap,
        (SELECT count(*) FROM (SELECT 1 FROM generations p
          WHERE p.tenant_id = t.id AND p.state IN ('queued', 'running') AND p.dispatched_at IS NOT NULL
          LIMIT coalesce(t.in_progress_cap, ${options.defaultCap}::int)) counted) AS in_progress
      FROM waiting_tenant w JOIN tenants t ON t.id = w.tenant_id
    ),
    turn AS (
      SELECT lane.*, d.pass, count(*) OVER (PARTITION BY lane.tenant_id) AS lanes_of_tenant,
        greatest(coalesce(d.pass, c.clock), c.clock) AS effective_pass
      FROM lane LEFT JOIN dispatch_lanes d ON d.lane = lane.key CROSS JOIN clock c
    ),
    served AS (
      SELECT turn.*, tl.tier, tl.cap, tl.in_progress FROM turn JOIN tenant_load tl USING (tenant_id)
      WHERE tl.in_progress < tl.cap
      ORDER BY turn.effective_pass, turn.key
      LIMIT ${options.maxLanes}
    ),
    budget AS (
      SELECT tat, paused_until FROM provider_rate_limits
      WHERE name = ${options.budget} AND EXISTS (SELECT 1 FROM lane)
      FOR UPDATE
    )
    SELECT (SELECT locked FROM lock) AS locked, (SELECT clock FROM clock) AS clock,
      (SELECT tat FROM budget) AS tat, (SELECT paused_until FROM budget) AS paused_until, statement_timestamp() AS now,
      (SELECT json_agg(json_build_object(
          'lane', s.key, 'tenantId', s.tenant_id, 'tier', s.tier, 'pass', s.pass, 'lanesOfTenant', s.lanes_of_tenant,
          'inProgress', s.in_progress, 'cap', s.cap,
          'waiting', ARRAY(SELECT u.id FROM ${inLane('s', sql<boolean>`(q.deadline_at IS NULL OR q.deadline_at > now())`, options.perLane)} u
            ORDER BY u.dispatch_order, u.id)
        ) ORDER BY s.effective_pass, s.key) FROM served s) AS lanes,
      -- Followers too: a follower's deadline is its own.
      ARRAY(SELECT x.id FROM generations x
        WHERE ${sql.raw(UNDISPATCHED('x'))} AND x.deadline_at <= now() AND (SELECT locked FROM lock)
        ORDER BY x.deadline_at LIMIT ${options.perLane}) AS expired
  `.execute(trx);
  const row = rows[0];
  if (!row?.locked) return { leader: false, clock: 0, budget: undefined, lanes: [], expired: [] };
  return {
    leader: true,
    clock: row.clock,
    budget: row.tat && row.paused_until ? { clock: { tat: row.tat.getTime(), pausedUntil: row.paused_until.getTime() }, now: row.now.getTime() } : undefined,
    lanes: row.lanes ?? [],
    expired: row.expired,
  };
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
  const { rows } = await sql<{ id: string; priority: number }>`${PREPARED}
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

