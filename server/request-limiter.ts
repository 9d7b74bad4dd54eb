// Request rate limits: what a tenant (and each of its subjects, when it limits them) may send,
// checked before anything is written. The limits are its tier's (config) unless the tenant has
// its own (`tenants set`); they are read once per `cacheMs` per tenant, like a verified key. The
// budgets themselves live in PostgreSQL (db/request-limits.ts), shared by every API process.
import type { Kysely } from 'kysely';
import type { Admission, BudgetRate } from '../db/gcra.ts';
import { admitRequests, pruneRequestBudgets, subjectBudgetKey, tenantBudgetKey, type RequestBudget } from '../db/request-limits.ts';
import type { Database } from '../db/schema.ts';
import { findTenantRequestLimits, type TenantRequestLimits } from '../db/tenants.ts';
import { badRequest, tooManyRequests } from './errors.ts';
import { createSharedAdmission } from './shared-admission.ts';

export interface RequestLimitSettings {
  /** Each tier's limit; a tier not listed gets `defaultLimit`. */
  tiers: Record<string, BudgetRate>;
  defaultLimit: BudgetRate;
  /** How long a tenant's limits are reused before they are read again. */
  cacheMs: number;
  maxCachedTenants: number;
}

export interface RequestLimiter {
  /**
   * Admits requests for a tenant — `perSubject` counts them by subject (null: none named); a
   * batch counts its items — or throws TOO_MANY_REQUESTS with the time to retry, having taken
   * nothing. More than a budget's burst at once never fits: BAD_REQUEST, saying how to split it.
   */
  admit(tenantId: string, perSubject: ReadonlyMap<string | null, number>, field: string): Promise<void>;
  /** Drops budgets that are full again (their rows say nothing a missing row would not). */
  prune(): Promise<number>;
}

export function createRequestLimiter(db: Kysely<Database>, settings: RequestLimitSettings): RequestLimiter {
  const cache = new Map<string, { limits: TenantRequestLimits | undefined; until: number }>();
  const admitShared = createSharedAdmission((budget, count) => admitRequests(db, [{ budget, count }]));

  async function limitsOf(tenantId: string): Promise<TenantRequestLimits | undefined> {
    const hit = cache.get(tenantId);
    if (hit && hit.until > Date.now()) return hit.limits;
    const limits = await findTenantRequestLimits(db, tenantId);
    if (settings.cacheMs > 0) {
      if (cache.size >= settings.maxCachedTenants) cache.delete(cache.keys().next().value ?? '');
      cache.set(tenantId, { limits, until: Date.now() + settings.cacheMs });
    }
    return limits;
  }

  return {
    async admit(tenantId, perSubject, field) {
      const limits = await limitsOf(tenantId);
      if (!limits) return; // a tenant removed meanwhile: its key is refused by the next lookup
      const tier = settings.tiers[limits.tier] ?? settings.defaultLimit;
      const tenantRate = { perMinute: limits.requestsPerMinute ?? tier.perMinute, burst: limits.requestBurst ?? tier.burst };
      const total = [...perSubject.values()].reduce((sum, count) => sum + count, 0);
      const checks: { budget: RequestBudget; count: number; who: string }[] = [{ budget: { key: tenantBudgetKey(tenantId), ...tenantRate }, count: total, who: 'this tenant' }];
      if (limits.subjectRequestsPerMinute !== null) {
        const subjectRate = { perMinute: limits.subjectRequestsPerMinute, burst: limits.subjectRequestBurst ?? 1 };
        for (const [subject, count] of perSubject) {
          if (subject !== null) checks.push({ budget: { key: subjectBudgetKey(tenantId, subject), ...subjectRate }, count, who: `subject "${subject}"` });
        }
      }
      for (const check of checks) {
        if (check.count > check.budget.burst) {
          throw badRequest(`${check.count} requests at once are more than ${check.who} may send together (${check.budget.burst}); split them into batches of at most ${check.budget.burst}`, {
            [field]: [`at most ${check.budget.burst} at once for ${check.who}`],
          });
        }
      }
      // One budget (the common case): shared with concurrent requests. Several: all or nothing,
      // db/request-limits.ts giving back what it took on a refusal.
      const only = checks.length === 1 ? checks[0] : undefined;
      const admission: Admission & { refused?: number } = only ? await admitShared(only.budget, only.count) : await admitRequests(db, checks);
      if (!admission.admitted) {
        const refused = checks[admission.refused ?? 0]!;
        const seconds = Math.max(1, Math.ceil(admission.retryInMs / 1000));
        throw tooManyRequests(`rate limit: ${refused.who} may send ${refused.budget.perMinute} requests a minute (bursts of ${refused.budget.burst}); retry in ${seconds} s`, seconds);
      }
    },
    prune: () => pruneRequestBudgets(db),
  };
}
