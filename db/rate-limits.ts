// Provider call budgets shared by every worker process, kept in one row per budget.
// The algorithm is GCRA (see gcra.ts for its arithmetic): calls are spaced by 60 s / perMinute,
// and up to `burst` may go back to back after a quiet spell. A caller reserves a slot —
// possibly a little in the future — in one atomic UPDATE, then sleeps until it; so processes
// never race for tokens or poll the table, and together they never exceed the budget. A 429
// from the provider pauses the budget for everyone.
import { sql, type Kysely } from 'kysely';
import { intervalMs, nextSlot, toleranceMs, type BudgetRate, type Reservation } from './gcra.ts';
import type { Database } from './schema.ts';

export type { Reservation } from './gcra.ts';

export interface Budget extends BudgetRate {
  name: string;
}

export interface BudgetState {
  name: string;
  /** How long a call asked for now would wait. */
  waitMs: number;
  pausedForMs: number;
  granted: number;
  throttled: number;
}

export async function ensureBudgets(db: Kysely<Database>, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await db
    .insertInto('provider_rate_limits')
    .values(names.map((name) => ({ name })))
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
}

/** Reserves the next call slot of a budget, unless it is more than `maxWaitMs` away. */
export async function reserveCall(db: Kysely<Database>, budget: Budget, maxWaitMs: number): Promise<Reservation> {
  // The rule of gcra.ts's reserve(), in seconds, in one statement.
  const interval = intervalMs(budget) / 1000;
  const tolerance = toleranceMs(budget) / 1000;
  // SET expressions read the row as it was, and an UPDATE waits for (and re-reads) a row a
  // concurrent reservation holds: each slot is handed out once.
  const slot = sql`greatest(tat - make_interval(secs => ${tolerance}), paused_until, statement_timestamp())`;
  const row = await sql<{ wait_ms: number | null; busy_ms: number | null }>`
    WITH taken AS (
      UPDATE provider_rate_limits
      SET last_slot = ${slot},
          tat = greatest(tat, paused_until, statement_timestamp()) + make_interval(secs => ${interval}),
          granted = granted + 1
      WHERE name = ${budget.name} AND ${slot} <= statement_timestamp() + make_interval(secs => ${maxWaitMs / 1000})
      RETURNING last_slot
    )
    SELECT
      (SELECT extract(epoch FROM last_slot - statement_timestamp()) * 1000 FROM taken)::float8 AS wait_ms,
      (SELECT extract(epoch FROM ${slot} - statement_timestamp()) * 1000 FROM provider_rate_limits WHERE name = ${budget.name})::float8 AS busy_ms
  `.execute(db);
  const result = row.rows[0];
  if (result?.wait_ms !== null && result?.wait_ms !== undefined) return { granted: true, waitMs: Math.max(0, result.wait_ms) };
  if (result?.busy_ms === null || result?.busy_ms === undefined) throw new Error(`no rate-limit budget named ${budget.name}; ensureBudgets() first`);
  return { granted: false, retryInMs: Math.max(0, result.busy_ms - maxWaitMs) };
}

/**
 * After a 429: nobody calls on this budget for `ms`, and when the pause ends calls resume at the
 * steady rate — no burst is saved up meanwhile (tat is set a full burst beyond the pause).
 */
export async function pauseBudget(db: Kysely<Database>, budget: Budget, ms: number): Promise<void> {
  // The rule of gcra.ts's pause(), in seconds.
  const until = sql`statement_timestamp() + make_interval(secs => ${ms / 1000})`;
  const tolerance = toleranceMs(budget) / 1000;
  await sql`
    UPDATE provider_rate_limits
    SET paused_until = greatest(paused_until, ${until}),
        tat = greatest(tat, ${until} + make_interval(secs => ${tolerance})),
        throttled = throttled + 1
    WHERE name = ${budget.name}
  `.execute(db);
}

export async function budgetStates(db: Kysely<Database>, budgets: readonly Budget[]): Promise<BudgetState[]> {
  const rows = await db.selectFrom('provider_rate_limits').selectAll().select(sql<Date>`statement_timestamp()`.as('now')).where('name', 'in', budgets.map((b) => b.name)).execute();
  return budgets.flatMap((budget) => {
    const row = rows.find((candidate) => candidate.name === budget.name);
    if (!row) return [];
    const now = row.now.getTime();
    const slot = nextSlot({ tat: row.tat.getTime(), pausedUntil: row.paused_until.getTime() }, budget, now);
    return [{ name: budget.name, waitMs: slot - now, pausedForMs: Math.max(0, row.paused_until.getTime() - now), granted: Number(row.granted), throttled: Number(row.throttled) }];
  });
}
