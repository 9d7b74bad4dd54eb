// Credits (see migration 0013): a metered tenant's balance and the ledger of its movements.
// Amounts are millionths of a US dollar (micro-dollars), integers end to end. Reserving happens
// in the statement that queues a generation (generations.ts), settling in a trigger when it
// ends; this module grants, reads and reports.
import { sql } from 'kysely';
import type { Db } from './schema.ts';

export const MICRO_USD_PER_USD = 1_000_000;

/** Dollars → whole micro-dollars. */
export const toMicroUsd = (usd: number): number => Math.round(usd * MICRO_USD_PER_USD);
export const toUsd = (microUsd: number): number => microUsd / MICRO_USD_PER_USD;

export interface CreditBalance {
  available: number;
  held: number;
}

/** A tenant's balance; undefined when it is not metered (never granted credit). */
export async function findCreditBalance(db: Db, tenantId: string): Promise<CreditBalance | undefined> {
  const row = await db.selectFrom('credit_balances').select(['available', 'held']).where('tenant_id', '=', tenantId).executeTakeFirst();
  return row && { available: Number(row.available), held: Number(row.held) };
}

/** Adds credit (and so meters a tenant from then on), with its ledger row, in one statement; answers the balance. */
export async function grantCredits(db: Db, tenantId: string, microUsd: number, note: string | null): Promise<CreditBalance> {
  const { rows } = await sql<{ available: string; held: string }>`
    WITH granted AS (
      INSERT INTO credit_balances (tenant_id, available) VALUES (${tenantId}, ${microUsd})
      ON CONFLICT (tenant_id) DO UPDATE SET available = credit_balances.available + excluded.available
      RETURNING available, held
    ),
    ledger AS (
      INSERT INTO credit_ledger (tenant_id, kind, available_delta, note) VALUES (${tenantId}, 'grant', ${microUsd}, ${note})
    )
    SELECT available, held FROM granted
  `.execute(db);
  const row = rows[0]!;
  return { available: Number(row.available), held: Number(row.held) };
}

/** What a generation was charged when it succeeded (micro-dollars; 0 if nothing was): the settle trigger's ledger row. */
export async function chargedFor(db: Db, generationId: string): Promise<number> {
  const row = await db
    .selectFrom('credit_ledger')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<string>('spent'), eb.lit(0)).as('spent'))
    .where('generation_id', '=', generationId)
    .where('kind', '=', 'charge')
    .executeTakeFirst();
  return Number(row?.spent ?? 0);
}

/** Whether a failed write was a reservation the balance could not cover. */
export function isInsufficientCredit(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'constraint' in error && error.constraint === 'credit_balances_available_not_negative';
}

export interface UsageRow {
  /** The day it was queued (UTC), YYYY-MM-DD. */
  day: string;
  model: string;
  /** Generations that ended (succeeded, failed or canceled). */
  generations: number;
  succeeded: number;
  /** Of them, served from an earlier success, and by joining identical work (no provider call of their own). */
  fromCache: number;
  joined: number;
  /** Charged to the tenant's credit (0 for a tenant that is not metered). */
  charged: number;
  /** What the provider bills for them. */
  providerCost: number;
}

/** Spend by model and day over the last `days` days, newest day first. */
export async function creditUsage(db: Db, tenantId: string, days: number): Promise<UsageRow[]> {
  const { rows } = await sql<{ day: string; model: string; generations: string; succeeded: string; from_cache: string; joined: string; charged: string; provider_cost: string }>`
    SELECT to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, g.model,
      count(*) AS generations, count(*) FILTER (WHERE g.state = 'succeeded') AS succeeded,
      count(*) FILTER (WHERE g.served_from_kind = 'cache') AS from_cache, count(*) FILTER (WHERE g.served_from_kind = 'joined') AS joined,
      coalesce(sum(l.spent), 0) AS charged, coalesce(sum(g.provider_cost), 0) AS provider_cost
    FROM generations g
    LEFT JOIN credit_ledger l ON l.generation_id = g.id AND l.kind = 'charge'
    WHERE g.tenant_id = ${tenantId} AND g.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - make_interval(days => ${days - 1})
      AND g.state IN ('succeeded', 'failed', 'canceled')
    GROUP BY 1, 2
    ORDER BY 1 DESC, 2
  `.execute(db);
  return rows.map((row) => ({
    day: row.day,
    model: row.model,
    generations: Number(row.generations),
    succeeded: Number(row.succeeded),
    fromCache: Number(row.from_cache),
    joined: Number(row.joined),
    charged: Number(row.charged),
    providerCost: Number(row.provider_cost),
  }));
}

/**
 * What a generation of a model with this price is billed by and reserves, in micro-dollars, for a
 * prediction of `images` images: the images' price (`unit` is then what the prediction's images
 * cost together, the settle trigger's per-image charge); or `reserveSeconds` of GPU time per image,
 * of which it is charged the time it took. When served from an identical generation it is charged
 * `cache`: `cacheShare` of what it would reserve.
 */
export function pricing(
  price: { per: 'image'; usd: number } | { per: 'gpu-second'; usd: number; reserveSeconds: number },
  cacheShare: number,
  images = 1,
): { per: 'image' | 'gpu-second'; unit: number; reserve: number; cache: number } {
  const unit = price.per === 'image' ? toMicroUsd(price.usd) * images : toMicroUsd(price.usd);
  const reserve = price.per === 'image' ? unit : Math.ceil(unit * price.reserveSeconds * images);
  return { per: price.per, unit, reserve, cache: Math.ceil(reserve * cacheShare) };
}
