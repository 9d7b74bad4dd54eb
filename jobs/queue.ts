// pg-boss, in its own schema of Kiln's database. Jobs are inserted through the caller's
// transaction, so a generation row and its job commit (or roll back) together.
import { PgBoss, fromKysely } from 'pg-boss';
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import type { Db } from '../db/schema.ts';
import { createDueAlarms } from './due-alarms.ts';

export const QUEUES = {
  /** The create phase: one job per generation, which creates its prediction (or resumes one). */
  generation: 'kiln-generation',
  /** The wait phase: one job per poll of a prediction the provider is working on. */
  poll: 'kiln-poll',
  /** The finish phase: download, render variants, store (CPU-bound, sized to the cores); copies from an identical generation; composites assembled from their parts. */
  finish: 'kiln-finish',
  /** Jobs of any phase that failed for good land here, and their generation is marked failed. */
  generationDead: 'kiln-generation-dead',
  /** Cancels a prediction at the provider after a client cancel. */
  cancelPrediction: 'kiln-cancel-prediction',
  /** Retention runs, on a schedule; one at a time across every process. */
  retention: 'kiln-retention',
} as const;

export interface GenerationJob {
  generationId: string;
  /**
   * The create slot the dispatcher booked for it (ms since the epoch): the create waits for it
   * and does not book another. Absent on deferred jobs, which book their own.
   */
  slotAt?: number;
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
  /** The first output (every job has it: jobs queued before several outputs name only this one). */
  outputUrl: string;
  /** Every output of the prediction, in order, when it made more than one. */
  outputUrls?: string[];
}

/** A generation served from an identical one: its variants are rendered from that one's original (finish queue). */
export interface CopyJob {
  generationId: string;
  copyOf: string;
}

export const isCopyJob = (job: FinishJob | CopyJob | AssembleJob): job is CopyJob => 'copyOf' in job;

/** A composite whose parts have all succeeded: it is delivered from their images (finish queue). */
export interface AssembleJob {
  generationId: string;
  assemble: true;
}

export const isAssembleJob = (job: FinishJob | CopyJob | AssembleJob): job is AssembleJob => 'assemble' in job;

export interface CancelPredictionJob {
  generationId: string;
  predictionId: string;
}

/** How jobs are kept and retried; the numbers come from Kiln's config, each with its reason there. */
export interface QueueSettings {
  poolSize: number;
  /** How long one job may run before pg-boss takes it back (each phase is short). */
  jobExpireSeconds: number;
  /** A worker that dies is noticed by its missing heartbeats, not at the expiry. */
  heartbeatSeconds: number;
  /** How often jobs of dead workers are failed and retried (pg-boss's monitor pass). */
  superviseIntervalSeconds: number;
  /** How fresh the cached backlog count is that fetch loops read. */
  queueCacheIntervalSeconds: number;
  deadLetterRetryLimit: number;
  /** How often a lost database is reported while it stays lost. */
  outageReportEveryMs: number;
  /** Finished jobs are deleted this long after they end. */
  finishedJobsKeepSeconds: number;
  /** Jobs that wait longer than this are deleted. */
  waitingJobsKeepSeconds: number;
  /** A retention run's job is taken back after this. */
  retentionJobExpireSeconds: number;
  /** A delayed job wakes this process's loops of its queue this long after it is due (due-alarms.ts). */
  dueWakeMarginMs: number;
}

/** Retries of a failed job: exponential backoff with jitter, from `delaySeconds` up to `delayMaxSeconds`. */
export interface RetrySettings {
  limit: number;
  delaySeconds: number;
  delayMaxSeconds: number;
}

export interface JobQueueOptions {
  connectionString: string;
  settings: QueueSettings;
  retry: RetrySettings;
  onError: (error: Error) => void;
  onWarning: (warning: { message: string }) => void;
}

export interface JobQueue {
  readonly boss: PgBoss;
  /** Wakes this fetch loop (a pg-boss worker id) when a job this process delayed on its queue comes due. */
  wakeWhenDue(queue: string, workerId: string): void;
  start(): Promise<void>;
  stop(options: { graceful: boolean; timeoutMs: number }): Promise<void>;
  /** Started and not stopped (a lost database does not stop it: pg-boss rides that out). */
  isRunning(): boolean;
  /** The create jobs of dispatched generations, each with the slot booked for it. */
  enqueueCreates(trx: Db, jobs: readonly { generationId: string; priority: number; slotAt: number }[]): Promise<void>;
  enqueueCancelPrediction(trx: Db, job: CancelPredictionJob): Promise<void>;
  /** A generation job that comes back later (rate limit booked, breaker open): not a retry. */
  deferGeneration(trx: Db, job: { generationId: string; priority: number }, delayMs: number): Promise<void>;
  enqueuePoll(trx: Db, job: PollJob, delayMs: number): Promise<void>;
  enqueueFinish(trx: Db, job: FinishJob): Promise<void>;
  /** Copies of generations served from identical ones, in one statement; they share the renderers with the finish phase. */
  enqueueCopies(trx: Db, jobs: readonly CopyJob[]): Promise<void>;
  enqueueAssemble(trx: Db, job: AssembleJob): Promise<void>;
}

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
  const { settings } = options;
  const boss = new PgBoss({
    connectionString: options.connectionString,
    schema: 'pgboss',
    max: settings.poolSize,
    application_name: 'kiln-queue',
    // A job sent while a worker is idle wakes it through LISTEN/NOTIFY; polling stays as the backstop.
    useListenNotify: true,
    queueCacheIntervalSeconds: settings.queueCacheIntervalSeconds,
    // Jobs whose worker stopped sending heartbeats (a crash) are failed and retried in pg-boss's
    // per-queue monitor pass, run by one process at a time.
    superviseIntervalSeconds: settings.superviseIntervalSeconds,
    monitorIntervalSeconds: settings.superviseIntervalSeconds,
  });
  // pg-boss rides out a lost database by itself (its loops retry, its pool reconnects, its
  // LISTEN comes back); meanwhile every loop and timer reports it, several times a second.
  boss.on('error', reportOutagesOnce(options.onError, settings.outageReportEveryMs));
  boss.on('warning', options.onWarning);
  let running = false;
  boss.on('stopped', () => (running = false));
  const alarms = createDueAlarms((workerId) => boss.notifyWorker(workerId), { marginMs: settings.dueWakeMarginMs });

  return {
    boss,
    wakeWhenDue: (queue, workerId) => alarms.watch(queue, workerId),
    isRunning: () => running,
    async start() {
      await boss.start();
      const retry = {
        retryLimit: options.retry.limit,
        retryDelay: options.retry.delaySeconds,
        retryBackoff: true,
        retryDelayMax: options.retry.delayMaxSeconds,
      };
      // pg-boss's own retention, on every queue: finished jobs go after a while, waiting ones much later.
      const kept = { deleteAfterSeconds: settings.finishedJobsKeepSeconds, retentionSeconds: settings.waitingJobsKeepSeconds };
      const phase = {
        ...retry,
        ...kept,
        notify: true,
        // Work whose generation cannot go on (a job that died for good) ends it as failed.
        deadLetter: QUEUES.generationDead,
        heartbeatSeconds: settings.heartbeatSeconds,
        expireInSeconds: settings.jobExpireSeconds,
      };
      const queues = [
        { name: QUEUES.generationDead, options: { ...kept, notify: true, retryLimit: settings.deadLetterRetryLimit, retryBackoff: true } },
        { name: QUEUES.generation, options: phase },
        { name: QUEUES.poll, options: phase },
        { name: QUEUES.finish, options: phase },
        { name: QUEUES.cancelPrediction, options: { ...retry, ...kept, notify: true } },
        // A missed or failed run is simply the next scheduled one's work: no retries.
        { name: QUEUES.retention, options: { ...kept, retryLimit: 0, expireInSeconds: settings.retentionJobExpireSeconds } },
      ];
      for (const queue of queues) {
        // createQueue leaves an existing queue as it was; updateQueue applies today's configuration.
        // 'exclusive' for retention: one run queued or running at a time, however many processes schedule it.
        await boss.createQueue(queue.name, { ...queue.options, ...(queue.name === QUEUES.retention ? { policy: 'exclusive' } : {}) });
        await boss.updateQueue(queue.name, queue.options);
      }
      running = true;
    },
    async stop({ graceful, timeoutMs }) {
      running = false;
      alarms.stop();
      await boss.stop({ graceful, timeout: timeoutMs, close: true });
    },
    async enqueueCreates(trx, jobs) {
      if (jobs.length === 0) return;
      // One statement for any number of jobs (and one NOTIFY), inside the caller's transaction.
      // No startAfter: the job is fetched at once (a NOTIFY wakes a worker) and waits for its
      // slot in the worker, which is at most the dispatch horizon away — a delayed job would be
      // found only by the backstop poll, late and in a clump.
      await boss.insert(
        QUEUES.generation,
        jobs.map((job) => ({ data: { generationId: job.generationId, slotAt: job.slotAt } satisfies GenerationJob, priority: job.priority })),
        { db: fromKysely(trx) },
      );
    },
    async deferGeneration(trx, job, delayMs) {
      await boss.send(QUEUES.generation, { generationId: job.generationId }, { priority: job.priority, startAfter: new Date(Date.now() + delayMs), db: fromKysely(trx) });
      alarms.delayed(QUEUES.generation, delayMs);
    },
    async enqueuePoll(trx, job, delayMs) {
      await boss.send(QUEUES.poll, { ...job }, { ...(delayMs > 0 ? { startAfter: new Date(Date.now() + delayMs) } : {}), db: fromKysely(trx) });
      alarms.delayed(QUEUES.poll, delayMs);
    },
    async enqueueFinish(trx, job) {
      await boss.send(QUEUES.finish, { ...job }, { db: fromKysely(trx) });
    },
    async enqueueCopies(trx, jobs) {
      if (jobs.length === 0) return;
      await boss.insert(QUEUES.finish, jobs.map((job) => ({ data: { generationId: job.generationId, copyOf: job.copyOf } satisfies CopyJob })), { db: fromKysely(trx) });
    },
    async enqueueAssemble(trx, job) {
      await boss.send(QUEUES.finish, { generationId: job.generationId, assemble: true } satisfies AssembleJob, { db: fromKysely(trx) });
    },
    async enqueueCancelPrediction(trx, job) {
      await boss.send(QUEUES.cancelPrediction, { ...job }, { db: fromKysely(trx) });
    },
  };
}
