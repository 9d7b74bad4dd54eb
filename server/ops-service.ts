// Operational stats for a tenant's dashboards: its generations per state, and the provider
// side every tenant shares — the rate-limit budgets (from the database, so the same from any
// process) and this process's circuit breaker.
import type { Kysely } from 'kysely';
import { countServedFrom } from '../db/cache.ts';
import { countTenantStates } from '../db/generations.ts';
import type { Database } from '../db/schema.ts';
import type { BreakerState as PolicyBreakerState, ProviderPolicies } from '../jobs/provider/policies.ts';
import type { ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import type { BreakerState, OpsStats } from './api-types.ts';
import type { Caller } from './caller.ts';
import type { Equal, Expect } from './same-type.ts';
import type { OpsService } from './services.ts';

/** The breaker's state goes out as the policies report it: the API's type must not drift from it. */
type BreakerStateMatchesThePolicies = Expect<Equal<PolicyBreakerState, BreakerState>>;

export function createOpsService(options: { db: Kysely<Database>; limiter: ProviderRateLimiter; policies: ProviderPolicies | undefined }): OpsService {
  return {
    async stats(caller: Caller): Promise<OpsStats> {
      const [generations, servedFrom, budgets] = await Promise.all([
        countTenantStates(options.db, caller.tenantId),
        countServedFrom(options.db, caller.tenantId),
        options.limiter.state(),
      ]);
      return {
        generations,
        servedFrom,
        provider: {
          breaker: options.policies?.breakerState() ?? null,
          budgets: budgets.map((budget) => ({
            name: budget.name,
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
