// The provider's rate limits, shared by every worker process through PostgreSQL (see
// db/rate-limits.ts). Replicate counts creates and everything else separately, so there are
// two budgets. A call waits for its slot if that is near; if not, it gives up with a
// RateLimitedError so the job can step aside instead of holding a worker slot.
import type { Kysely } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import { budgetStates, ensureBudgets, pauseBudget, reserveCall, type Budget, type BudgetState } from '../../db/rate-limits.ts';
import type { Database } from '../../db/schema.ts';
import { NO_JOB_METRICS, type JobMetrics } from '../metrics.ts';
import { RateLimitedError } from './errors.ts';
import type { CallKind } from './provider.ts';

export interface RateLimitOptions {
  db: Kysely<Database>;
  /** Budget names are `${provider}:create` and `${provider}:read`. */
  provider: string;
  creates: { perMinute: number; burst: number };
  reads: { perMinute: number; burst: number };
  /** Longest a call waits for its slot before it is deferred instead. */
  maxWaitMs: number;
  /** Pause after a 429 that says nothing about when to retry. */
  throttledPauseMs: number;
  /** Where each slot's wait (or refusal) is reported. */
  metrics?: JobMetrics;
}

export interface ProviderRateLimiter {
  start(): Promise<void>;
  /** Waits for this call's slot, or throws RateLimitedError if it is more than maxWaitMs away. */
  acquire(kind: CallKind, signal?: AbortSignal): Promise<void>;
  /** The provider answered 429: nobody calls on that budget for a while. */
  throttled(kind: CallKind, retryAfterMs: number | undefined): Promise<number>;
  state(): Promise<BudgetState[]>;
  /** The budget of one kind of call, as the dispatcher books it ahead. */
  budget(kind: CallKind): Budget;
}

export function createProviderRateLimiter(options: RateLimitOptions): ProviderRateLimiter {
  const budgets: Record<CallKind, Budget> = {
    create: { name: `${options.provider}:create`, ...options.creates },
    read: { name: `${options.provider}:read`, ...options.reads },
  };
  const metrics = options.metrics ?? NO_JOB_METRICS;
  return {
    start: () => ensureBudgets(options.db, [budgets.create.name, budgets.read.name]),
    async acquire(kind, signal) {
      const reservation = await reserveCall(options.db, budgets[kind], options.maxWaitMs);
      metrics.budgetSlot(kind, reservation.granted ? reservation.waitMs / 1000 : undefined);
      if (!reservation.granted) {
        throw new RateLimitedError(`provider ${kind} budget is booked for the next ${Math.round(reservation.retryInMs + options.maxWaitMs)} ms`, {
          retryInMs: reservation.retryInMs,
        });
      }
      if (reservation.waitMs > 0) await sleep(reservation.waitMs, undefined, signal ? { signal } : {});
    },
    async throttled(kind, retryAfterMs) {
      const pauseMs = retryAfterMs ?? options.throttledPauseMs;
      await pauseBudget(options.db, budgets[kind], pauseMs);
      return pauseMs;
    },
    state: () => budgetStates(options.db, [budgets.create, budgets.read]),
    budget: (kind) => budgets[kind],
  };
}
