// Liveness and readiness, as an orchestrator probes them.
//   /health (liveness): the process is up and its event loop answers. No dependency can fail it —
//     a restart cures none of them, and restarting every process while the database or the
//     provider is away only adds an outage of Kiln's own.
//   /ready (readiness): this process can do its work now — the database answers, its schema is
//     the one this code expects, the queue runs. The provider's breaker is reported, not judged:
//     an open breaker defers work to the queue, and taking the process out of a load balancer
//     would not bring the provider back.
// Both are cheap enough to probe every second: liveness touches nothing, readiness is one
// database round trip reused for `readyCacheMs` and shared by probes that arrive together.
import type { Kysely } from 'kysely';
import { pingDatabase } from '../db/database.ts';
import { pendingMigrations } from '../db/migrate.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../jobs/logger.ts';
import type { BreakerState } from '../jobs/provider/policies.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { KilnConfig } from './config.ts';
import { DATABASE_RETRY_AFTER_SECONDS } from './errors.ts';
import { cached } from './metrics/cached.ts';

export interface Check {
  ok: boolean;
  detail?: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  checks: Record<string, Check>;
  /** Reported, never a reason to be unready (worker processes; null elsewhere). */
  provider?: { breaker: BreakerState | null };
  role?: KilnConfig['role'];
  uptimeSeconds?: number;
  /** Sent as Retry-After: what failed comes back by itself (a database that is down). */
  retryAfterSeconds?: number;
}

export interface HealthChecks {
  live(): HealthReport;
  ready(): Promise<HealthReport>;
}

export interface HealthCheckOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  role: KilnConfig['role'];
  /** This process's breaker, when it runs the worker. */
  breakerState: (() => BreakerState) | undefined;
  readyCacheMs: number;
  logger: Logger;
}

export function createHealthChecks(options: HealthCheckOptions): HealthChecks {
  const { db, logger } = options;
  const startedAt = performance.now();
  // Migrations only move forward: once current, the schema stays current for this code.
  let schemaCurrent = false;

  async function checkDatabase(): Promise<{ database: Check; migrations: Check }> {
    try {
      await pingDatabase(db);
    } catch (error) {
      // The detail goes to the log; /ready is public and says only what failed.
      logger.warn('readiness: database unreachable', { error: error instanceof Error ? error.message : String(error) });
      return { database: { ok: false, detail: 'unreachable' }, migrations: { ok: false, detail: 'unknown while the database is unreachable' } };
    }
    if (schemaCurrent) return { database: { ok: true }, migrations: { ok: true } };
    try {
      const pending = await pendingMigrations(db);
      schemaCurrent = pending.length === 0;
      return { database: { ok: true }, migrations: schemaCurrent ? { ok: true } : { ok: false, detail: `${pending.length} pending` } };
    } catch (error) {
      logger.warn('readiness: reading the migrations failed', { error: error instanceof Error ? error.message : String(error) });
      return { database: { ok: true }, migrations: { ok: false, detail: 'could not be read' } };
    }
  }

  const readiness = cached(options.readyCacheMs, async (): Promise<HealthReport> => {
    const { database, migrations } = await checkDatabase();
    const queue: Check = options.queue.isRunning() ? { ok: true } : { ok: false, detail: 'stopped' };
    const checks = { database, migrations, queue };
    const ok = Object.values(checks).every((check) => check.ok);
    return {
      status: ok ? 'ok' : 'degraded',
      checks,
      provider: { breaker: options.breakerState?.() ?? null },
      ...(database.ok ? {} : { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS }),
    };
  });

  return {
    live: () => ({ status: 'ok', checks: {}, role: options.role, uptimeSeconds: Math.round((performance.now() - startedAt) / 1000) }),
    async ready() {
      const report = await readiness.get();
      // The breaker changes by the second and costs nothing to read: always as it is now.
      return { ...report, provider: { breaker: options.breakerState?.() ?? null } };
    },
  };
}
