// Operational stats for a tenant's dashboards: its generations per state, and the provider
// side every tenant shares — the rate-limit budgets (from the database, so the same from any
// process) and this process's circuit breaker.
import type { Kysely } from 'kysely';
import { countTenantStates } from '../db/generations.ts';
import type { Database } from '../db/schema.ts';
import type { ProviderPolicies } from '../jobs/provider/policies.ts';
import type { ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import type { Caller } from './caller.ts';

export type OpsService = ReturnType<typeof createOpsService>;

export function createOpsService(options: { db: Kysely<Database>; limiter: ProviderRateLimiter; policies: ProviderPolicies | undefined }) {
  return {
    async stats(caller: Caller) {
      const [generations, budgets] = await Promise.all([countTenantStates(options.db, caller.tenantId), options.limiter.state()]);
      return {
        generations,
        provider: {
          /** null in an API-only process, which makes no provider calls (see the workers' /health). */
          breaker: options.policies?.breakerState() ?? null,
          budgets: budgets.map((budget) => ({
            name: budget.name,
            /** How long a call asked for now would wait for its slot. */
            waitMs: Math.round(budget.waitMs),
            pausedForMs: Math.round(budget.pausedForMs),
            granted: budget.granted,
            throttled: budget.throttled,
          })),
        },
      };
    },
  };
}
