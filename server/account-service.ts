// A tenant's account: its credit balance and what it spent, by model and day (db/credits.ts).
// Amounts are kept in micro-dollars and answered in dollars.
import type { Kysely } from 'kysely';
import { creditUsage, findCreditBalance, toUsd } from '../db/credits.ts';
import type { Database } from '../db/schema.ts';
import type { CreditsView } from './api-types.ts';
import type { AccountService } from './services.ts';

export function createAccountService(options: { db: Kysely<Database> }): AccountService {
  return {
    async credits(caller, input): Promise<CreditsView> {
      const [balance, usage] = await Promise.all([findCreditBalance(options.db, caller.tenantId), creditUsage(options.db, caller.tenantId, input.days)]);
      return {
        metered: balance !== undefined,
        availableUsd: toUsd(balance?.available ?? 0),
        heldUsd: toUsd(balance?.held ?? 0),
        usage: usage.map((row) => ({
          day: row.day,
          model: row.model,
          generations: row.generations,
          succeeded: row.succeeded,
          fromCache: row.fromCache,
          joined: row.joined,
          chargedUsd: toUsd(row.charged),
          providerCostUsd: toUsd(row.providerCost),
        })),
      };
    },
  };
}
