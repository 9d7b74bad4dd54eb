// pg-boss, in its own schema of Kiln's database. Jobs are inserted through the caller's
// transaction, so a generation row and its job commit (or roll back) together.
import type { Kysely, Transaction } from 'kysely';
import { PgBoss, fromKysely } from 'pg-boss';
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import type { Database } from '../db/schema.ts';

export const QUEUES = {
  /** The create phase: one job per generation, which creates its prediction (or resumes one). */
  generation: 'kiln-generation',
  /** The wait phase: one job per poll of a prediction the provider is working on. */
  poll: 'kiln-poll',
  /** The finish phase: download, render variants, store (CPU-bound, sized to the cores). */
  finish: 'kiln-finish',
  /** Jobs of any phase that failed for good land here, and their generation is marked failed. */
  generationDead: 'kiln-generation-dead',
  /** Cancels a prediction at the provider after a client cancel. */
  cancelPrediction: 'kiln-cancel-prediction',
} as const;

export interface GenerationJob {
  generationId: string;
}

export interface PollJob {
  generationId: string;
  attempt: number;
  predictionId: string;
  /** Polls of this prediction so far (spaces the next one). */
  polls: number;
  /** When the prediction was created (ms since the epoch; 0 when unknown): how long models take is learnt from it. */
  createdAt: number;
}

export interface FinishJob {
  generationId: string;
  attempt: number;
  predictionId: string;
  outputUrl: string;
}

export interface CancelPredictionJob {
  generationId: string;
  predictionId: string;
}

export interface JobQueueOptions {
  connectionString: string;
  /** Transient failures are retried this many times, with exponential backoff and jitter. */
  generationRetryLimit: number;
  retryDelaySeconds: number;
  retryDelayMaxSeconds: number;
  /** How long one job may run before pg-boss takes it back (each phase is short now). */
  jobExpireSeconds: number;
  maxConnections: number;
  onError: (error: Error) => void;
  onWarning: (warning: { message: string }) => void;
}

export interface JobQueue {
  readonly boss: PgBoss;
  start(): Promise<void>;
  stop(options: { graceful: boolean; timeoutMs: number }): Promise<void>;
  enqueueGenerations(trx: Transaction<Database> | Kysely<Database>, jobs: readonly { generationId: string; priority: number }[]): Promise<void>;
  enqueueCancelPrediction(trx: Transaction<Database> | Kysely<Database>, job: CancelPredictionJob): Promise<void>;
  /** A generation job that comes back later (rate limit booked, breaker open): not a retry. */
  deferGeneration(trx: Transaction<Database> | Kysely<Database>, job: { generationId: string; priority: number }, delayMs: number): Promise<void>;
  enqueuePoll(trx: Transaction<Database> | Kysely<Database>, job: PollJob, delayMs: number): Promise<void>;
  enqueueFinish(trx: Transaction<Database> | Kysely<Database>, job: FinishJob): Promise<void>;
}

/** While the database is away, one report of it per this long is enough. */
const OUTAGE_REPORT_EVERY_MS = 10_000;

/** Passes errors on, except that "database unavailable" ones are passed on once per `everyMs`, with a count of the rest. */
function reportOutagesOnce(report: (error: Error) => void, everyMs: number): (error: Error) => void {
  let reportedAt = -Infinity;
  let unreported = 0;
  return (error) => {
    if (!isDatabaseUnavailable(error)) return report(error);
    if (performance.now() - reportedAt < everyMs) {
      unreported += 1;
      return;
    }
    reportedAt = performance.now();
    const more = unreported > 0 ? ` (and ${unreported} more like it since the last report)` : '';
    unreported = 0;
    report(new Error(`database unavailable; the queue retries by itself: ${error.message}${more}`, { cause: error }));
  };
}

export function createJobQueue(options: JobQueueOptions): JobQueue {
  const boss = new PgBoss({
    connectionString: options.connectionString,
    schema: 'pgboss',
    max: options.maxConnections,
    application_name: 'kiln-queue',
    // A job sent while a worker is idle wakes it through LISTEN/NOTIFY; polling stays as the backstop.
    useListenNotify: true,
    // Workers read the queue's backlog from this cache to decide whether to keep fetching.
    queueCacheIntervalSeconds: 2,
    // How often jobs whose worker stopped sending heartbeats (a crash) are failed and retried:
    // pg-boss does it in its per-queue monitor pass, run by one process at a time.
    superviseIntervalSeconds: 5,
    monitorIntervalSeconds: 5,
  });
  // pg-boss rides out a lost database by itself (its loops retry, its pool reconnects, its
  // LISTEN comes back); meanwhile every loop and timer reports it, several times a second.
  boss.on('error', reportOutagesOnce(options.onError, OUTAGE_REPORT_EVERY_MS));
  boss.on('warning', options.onWarning);

  return {
    boss,
    async start() {
      await boss.start();
      const retry = {
        retryLimit: options.generationRetryLimit,
        retryDelay: options.retryDelaySeconds,
        retryBackoff: true,
        retryDelayMax: options.retryDelayMaxSeconds,
      };
      const phase = {
        ...retry,
        notify: true,
        // Work whose generation cannot go on (a job that died for good) ends it as failed.
        deadLetter: QUEUES.generationDead,
        // A worker that dies is noticed within about this long (pg-boss heartbeats), not at the expiry.
        heartbeatSeconds: 10,
        expireInSeconds: options.jobExpireSeconds,
      };
      const queues = [
        { name: QUEUES.generationDead, options: { notify: true, retryLimit: 5, retryBackoff: true } },
        { name: QUEUES.generation, options: phase },
        { name: QUEUES.poll, options: phase },
        { name: QUEUES.finish, options: phase },
        { name: QUEUES.cancelPrediction, options: { ...retry, notify: true } },
      ];
      for (const queue of queues) {
        // createQueue leaves an existing queue as it was; updateQueue applies today's configuration.
        await boss.createQueue(queue.name, queue.options);
        await boss.updateQueue(queue.name, queue.options);
      }
    },
    async stop({ graceful, timeoutMs }) {
      await boss.stop({ graceful, timeout: timeoutMs, close: true });
    },
    async enqueueGenerations(trx, jobs) {
      if (jobs.length === 0) return;
      // One statement for any number of jobs (and one NOTIFY), inside the caller's transaction.
      await boss.insert(
        QUEUES.generation,
        jobs.map((job) => ({ data: { generationId: job.generationId }, priority: job.priority })),
        { db: fromKysely(trx) },
      );
    },
    async deferGeneration(trx, job, delayMs) {
      await boss.send(QUEUES.generation, { generationId: job.generationId }, { priority: job.priority, startAfter: new Date(Date.now() + delayMs), db: fromKysely(trx) });
    },
    async enqueuePoll(trx, job, delayMs) {
      await boss.send(QUEUES.poll, { ...job }, { ...(delayMs > 0 ? { startAfter: new Date(Date.now() + delayMs) } : {}), db: fromKysely(trx) });
    },
    async enqueueFinish(trx, job) {
      await boss.send(QUEUES.finish, { ...job }, { db: fromKysely(trx) });
    },
    async enqueueCancelPrediction(trx, job) {
      await boss.send(QUEUES.cancelPrediction, { ...job }, { db: fromKysely(trx) });
    },
  };
}
