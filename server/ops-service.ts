// Operational stats for a tenant's dashboards: its generations per state, and the provider
// side every tenant shares — the rate-limit budgets (from the database, so the same from any
// process) and this process's circuit breaker.
import type { Kysely } from 'kysely';
import { countServedFrom } from '../db/cache.ts';
import { countTenantStates } from '../db/generations.ts';
import type { Database } from '../db/schema.ts';
import type { BreakerState as PolicyBreakerState, ProviderPolicies } from '../jobs/provider/policies.ts';
import type { ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import { countInProgress, readTenantProviderUse, readThroughput } from '../db/operator-overview.ts';
import { DISPATCH_QUEUE_NAME, readQueueDepths } from '../db/queue-depth.ts';
import { QUEUES } from '../jobs/queue.ts';
import type { BreakerState, OperatorOverview, OpsStats } from './api-types.ts';
import type { Caller } from './caller.ts';
import type { Equal, Expect } from './same-type.ts';
import type { OpsService } from './services.ts';

/** The breaker's state goes out as the policies report it: the API's type must not drift from it. */
type BreakerStateMatchesThePolicies = Expect<Equal<PolicyBreakerState, BreakerState>>;

/** The overview's look back: throughput by minute, and each tenant's recent provider work. */
const OVERVIEW_MINUTES = 15;

export function createOpsService(options: { db: Kysely<Database>; limiter: ProviderRateLimiter; policies: ProviderPolicies | undefined }): OpsService {
  const limits = new Map([options.limiter.budget('create'), options.limiter.budget('read')].map((budget) => [budget.name, budget.perMinute]));
  return {
    async overview(): Promise<OperatorOverview> {
      const [generations, queues, throughput, tenants, budgets] = await Promise.all([
        countInProgress(options.db),
        readQueueDepths(options.db, 'pgboss', Object.values(QUEUES)),
        readThroughput(options.db, OVERVIEW_MINUTES),
        readTenantProviderUse(options.db, OVERVIEW_MINUTES),
        options.limiter.state(),
      ]);
      const total = tenants.reduce((sum, tenant) => sum + tenant.inProgress + tenant.endedRecently, 0);
      return {
        at: new Date(),
        generations,
        // Every queue in every state, 0 where none wait.
        queues: [DISPATCH_QUEUE_NAME, ...Object.values(QUEUES)].flatMap((queue) =>
          (['queued', 'scheduled', 'active'] as const).map((state) => {
            const depth = queues.find((entry) => entry.queue === queue && entry.state === state);
            return { queue, state, jobs: depth?.jobs ?? 0, oldestSeconds: depth?.oldestSeconds === undefined ? null : Math.round(depth.oldestSeconds * 10) / 10 };
          }),
        ),
        throughput,
        provider: {
          breaker: options.policies?.breakerState() ?? null,
          budgets: budgets.map((budget) => ({
            name: budget.name,
            perMinute: limits.get(budget.name) ?? 0,
            waitMs: Math.round(budget.waitMs),
            pausedForMs: Math.round(budget.pausedForMs),
            granted: budget.granted,
            throttled: budget.throttled,
          })),
        },
        tenants: tenants.map(({ tenantName, ...tenant }) => ({ ...tenant, name: tenantName, share: total === 0 ? 0 : (tenant.inProgress + tenant.endedRecently) / total })),
        windowMinutes: OVERVIEW_MINUTES,
      };
    },

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
