// Request rate limits shared by every API process: a GCRA budget per tenant (and per subject of
// a tenant that limits its subjects), one row each in request_budgets. The rule is gcra.ts's
// admit(): a request, or a batch of them, is admitted whole or refused with the time to retry —
// never queued. One statement per budget, prepared (it runs on every generate).
import { sql, type Kysely } from 'kysely';
import { PREPARED } from './database.ts';
import { admit, intervalMs, type Admission, type BudgetRate } from './gcra.ts';
import type { Database } from './schema.ts';

export interface RequestBudget extends BudgetRate {
  /** 't:<tenant id>' or 's:<tenant id>:<subject>' (see tenantBudgetKey / subjectBudgetKey). */
  key: string;
}

export const tenantBudgetKey = (tenantId: string) => `t:${tenantId}`;
export const subjectBudgetKey = (tenantId: string, subject: string) => `s:${tenantId}:${subject}`;

/**
 * Admits each `count` requests on its budget, or nothing at all: budgets are taken in order, and
 * when a later one refuses, those taken before are given back. A refusal says which one refused.
 */
export async function admitRequests(db: Kysely<Database>, requests: readonly { budget: RequestBudget; count: number }[]): Promise<Admission & { refused?: number }> {
  for (const [index, { budget, count }] of requests.entries()) {
    const admission = await take(db, budget, count);
    if (!admission.admitted) {
      for (const earlier of requests.slice(0, index)) await giveBack(db, earlier.budget, earlier.count);
      return { ...admission, refused: index };
    }
  }
  return { admitted: true };
}

async function take(db: Kysely<Database>, budget: RequestBudget, count: number): Promise<Admission> {
  // More than a burst never fits: said without a query (admit() says the same).
  const never = admit({ tat: 0 }, budget, 0, count);
  if (!never.admission.admitted) return never.admission;
  // The rule of gcra.ts's admit(), in seconds, in one statement. An absent row is a full budget.
  // The commit need not wait for its WAL flush: the table is unlogged, and so is the decision.
  const step = (count * intervalMs(budget)) / 1000;
  const window = (Math.max(1, budget.burst) * intervalMs(budget)) / 1000;
  const next = (tat: ReturnType<typeof sql.ref>) => sql`greatest(${tat}, statement_timestamp()) + make_interval(secs => ${step}::float8)`;
  const { rows } = await sql<{ admitted: boolean; retry_ms: number | null }>`${PREPARED}
    WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true)),
    taken AS (
      INSERT INTO request_budgets AS b (key, tat)
      SELECT ${budget.key}::text, statement_timestamp() + make_interval(secs => ${step}::float8) FROM commit_mode
      ON CONFLICT (key) DO UPDATE SET tat = ${next(sql.ref('b.tat'))}
        WHERE ${next(sql.ref('b.tat'))} - make_interval(secs => ${window}::float8) <= statement_timestamp()
      RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM taken) AS admitted,
      (SELECT extract(epoch FROM ${next(sql.ref('r.tat'))} - make_interval(secs => ${window}::float8) - statement_timestamp()) * 1000
        FROM request_budgets r WHERE r.key = ${budget.key}::text)::float8 AS retry_ms
  `.execute(db);
  const row = rows[0];
  if (row?.admitted) return { admitted: true };
  return { admitted: false, retryInMs: Math.max(0, row?.retry_ms ?? 0) };
}

/** Undoes an admission of `count` (another budget refused the same requests). */
async function giveBack(db: Kysely<Database>, budget: RequestBudget, count: number): Promise<void> {
  await sql`UPDATE request_budgets SET tat = tat - make_interval(secs => ${(count * intervalMs(budget)) / 1000}::float8) WHERE key = ${budget.key}`.execute(db);
}

/** Budgets that are full again hold nothing a missing row would not: dropped, so subjects do not pile up. */
export async function pruneRequestBudgets(db: Kysely<Database>): Promise<number> {
  const result = await db.deleteFrom('request_budgets').where('tat', '<', sql<Date>`statement_timestamp()`).executeTakeFirst();
  return Number(result.numDeletedRows);
}
