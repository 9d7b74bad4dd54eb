// The worker: carries generations from 'queued' to a final state in three phases, each its own
// pg-boss queue, so no slot is held while the provider works:
//   create (kiln-generation) → wait (kiln-poll, or a webhook) → finish (kiln-finish)
// Every write is fenced by the attempt the worker claimed, so a worker that lost its job
// cannot overwrite a newer attempt's result.
import type { Kysely } from 'kysely';
import type { JobResult, JobWithMetadata } from 'pg-boss';
import type { Database, Generation } from '../db/schema.ts';
import type { Logger } from './logger.ts';
import { NO_JOB_METRICS, type JobMetrics, type JobPhase } from './metrics.ts';
import { createCreatePhase } from './phases/create-phase.ts';
import { createCopyPhase } from './phases/copy-phase.ts';
import { createDelivery } from './phases/deliver.ts';
import { createFinishPhase } from './phases/finish-phase.ts';
import type { EarlierCreateSearch } from './phases/earlier-create.ts';
import { handleFailure } from './phases/failures.ts';
import { failGeneration } from './phases/outcomes.ts';
import { createPredictionUpdates, type PredictionUpdates } from './phases/prediction-updates.ts';
import { createWaitPhase, type WaitPhaseOptions } from './phases/wait-phase.ts';
import type { DownloadLimits } from './provider/download-output.ts';
import type { ImageProvider } from './provider/provider.ts';
import { QUEUES, isCopyJob, type CancelPredictionJob, type CopyJob, type FinishJob, type GenerationJob, type JobQueue, type PollJob } from './queue.ts';
import type { RenderLimits } from './render/render-variants.ts';
import type { AssetStorage } from './storage/storage.ts';

export interface GenerationWorkerOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  storage: AssetStorage;
  logger: Logger;
  /** Names this worker in the events it writes (host, process and instance). */
  workerId: string;
  concurrency: {
    /** Create calls at once (each is short: one provider call). */
    create: number;
    /** Polls at once. */
    poll: number;
    /** Downloads and renders at once: CPU-bound, about one per core. */
    finish: number;
  };
  pickup: {
    /** Fetch loops of the create phase. */
    createLoops: number;
    /** Seconds between backstop fetches of each queue (delayed jobs send no NOTIFY when due). */
    backstopSeconds: { create: number; poll: number; finish: number; cancel: number; dead: number };
    /** pg-boss's fetch interval where LISTEN/NOTIFY does not apply. */
    pollingIntervalSeconds: number;
    cancelConcurrency: number;
  };
  create: {
    /** Longest one create call can take with its retries. */
    settleMs: number;
    minCancelAfterSeconds: number;
    /** How long a prediction may run at the provider. */
    predictionTimeoutSeconds: number;
    earlierCreate: EarlierCreateSearch;
  };
  defer: { minMs: number; jitter: number };
  polls: WaitPhaseOptions['polls'];
  /** The shared read budget per minute; polls are spaced to fit in it. */
  readsPerMinute: number;
  webhooks: {
    /** Kiln's public base URL for webhooks, once known; undefined: no webhooks, polls only. */
    baseUrl: () => string | undefined;
    /** With webhooks, how long after the expected finish a backstop poll looks. */
    backstopMs: number;
  };
  download: DownloadLimits;
  render: RenderLimits;
  /** Where each job's wait, run time and outcome (and each phase's own news) are reported. */
  metrics?: JobMetrics;
}

export interface GenerationWorker {
  /** Shared with the webhook endpoint: what a prediction's news means for its generation. */
  readonly updates: PredictionUpdates;
  start(): Promise<void>;
  /**
   * Stops fetching and lets the jobs in hand finish, for at most `graceMs`; what is still running
   * then is abandoned to pg-boss, which hands it to another worker. Waits on the provider hold no
   * job, so they are simply picked up later.
   */
  stop(graceMs: number): Promise<void>;
}

export function createGenerationWorker(options: GenerationWorkerOptions): GenerationWorker {
  const { db, queue, provider, logger } = options;
  const metrics = options.metrics ?? NO_JOB_METRICS;
  const updates = createPredictionUpdates({ db, queue });
  const wait = createWaitPhase({
    db,
    queue,
    provider,
    updates,
    logger,
    polls: options.polls,
    readsPerMinute: options.readsPerMinute,
    webhookBackstopMs: () => (options.webhooks.baseUrl() ? options.webhooks.backstopMs : undefined),
  });
  const create = createCreatePhase({
    db,
    queue,
    provider,
    wait,
    logger,
    workerId: options.workerId,
    metrics,
    createSettleMs: options.create.settleMs,
    minCancelAfterSeconds: options.create.minCancelAfterSeconds,
    predictionTimeoutSeconds: options.create.predictionTimeoutSeconds,
    earlierCreate: options.create.earlierCreate,
    defer: options.defer,
    webhookUrl: (generation: Generation) => {
      const base = options.webhooks.baseUrl();
      // The generation's id rides in the URL: it tells the webhook which generation the news is for.
      return base ? `${base}/webhooks/replicate?${new URLSearchParams({ tag: generation.id })}` : undefined;
    },
  });
  const deliver = createDelivery({ db, queue, storage: options.storage, render: options.render, metrics });
  const finish = createFinishPhase({ db, provider, deliver, logger, download: options.download });
  const copy = createCopyPhase({ db, storage: options.storage, deliver, logger, workerId: options.workerId });

  async function cancelAtProvider(job: JobWithMetadata<CancelPredictionJob>): Promise<void> {
    try {
      await provider.cancelPrediction(job.data.predictionId, job.signal);
    } catch (error) {
      // The generation is final already: nothing is written, whatever the table decides.
      await handleFailure('cancel', error, job, { db, logger });
    }
  }

  /** Runs one job and reports it: its wait (from when it was due, by the database's clock), run time and outcome. */
  async function measured<T>(phase: JobPhase, job: JobWithMetadata<T>, run: () => Promise<void>): Promise<void> {
    const startedAt = performance.now();
    const waitedSeconds = Math.max(0, (job.startedOn.getTime() - job.startAfter.getTime()) / 1000);
    try {
      await run();
      metrics.jobRan(phase, 'completed', { waitedSeconds, ranSeconds: (performance.now() - startedAt) / 1000 });
    } catch (error) {
      metrics.jobRan(phase, 'failed', { waitedSeconds, ranSeconds: (performance.now() - startedAt) / 1000 });
      throw error;
    }
  }

  const queues = [QUEUES.generation, QUEUES.poll, QUEUES.finish, QUEUES.cancelPrediction, QUEUES.generationDead];

  return {
    updates,
    async stop(graceMs) {
      const drained = Promise.all(queues.map((name) => queue.boss.offWork(name, { wait: true })));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([drained, timer]);
    },
    async start() {
      // Each phase is one fetch loop (two for the create phase, so one slow batch does not hold
      // up pickup) taking up to `slots / loops` jobs at a time (at least 2) and running them side
      // by side; when the batch is done each job is settled by its own result (perJobResults), so
      // one failure does not fail the others. A NOTIFY wakes an idle loop at once; a full batch
      // means more may wait, so the loop fetches again at once (burstWhenBatchFull — pg-boss's
      // cached backlog count lags fresh jobs, so batch size 1 with many loops leaves gaps).
      // Delayed jobs (polls, retries, deferrals) send no NOTIFY when they come due: the backstop
      // poll (`backstopSeconds`) finds them.
      const phase = <T>(name: string, slots: number, loops: number, backstopSeconds: number, run: (job: JobWithMetadata<T>) => Promise<void>, phaseOf: (job: JobWithMetadata<T>) => JobPhase) => {
        const options = {
          localConcurrency: loops,
          batchSize: Math.max(2, Math.ceil(slots / loops)), // burstWhenBatchFull needs batches of 2 or more
          burstWhenBatchFull: true,
          perJobResults: true,
          includeMetadata: true,
          pollingIntervalSeconds: pickup.pollingIntervalSeconds,
          notifyPollingIntervalSeconds: backstopSeconds,
        } as const;
        return queue.boss.work<T, unknown, typeof options>(name, options, (jobs) =>
          Promise.all(
            jobs.map(async (job): Promise<JobResult> => {
              try {
                await measured(phaseOf(job), job, () => run(job));
                return { id: job.id, status: 'completed' };
              } catch (error) {
                return { id: job.id, status: 'failed', output: { message: error instanceof Error ? error.message : String(error) } };
              }
            }),
          ),
        );
      };
      const { concurrency, pickup } = options;
      await phase<GenerationJob>(QUEUES.generation, concurrency.create, pickup.createLoops, pickup.backstopSeconds.create, (job) => create.run(job), () => 'create');
      await phase<PollJob>(QUEUES.poll, concurrency.poll, 1, pickup.backstopSeconds.poll, (job) => wait.run(job.data, job), () => 'poll');
      await phase<FinishJob | CopyJob>(
        QUEUES.finish,
        concurrency.finish,
        1,
        pickup.backstopSeconds.finish,
        (job) => (isCopyJob(job.data) ? copy.run(job.data, job) : finish.run(job.data, job)),
        (job) => (isCopyJob(job.data) ? 'copy' : 'finish'),
      );
      const cancelWork = { localConcurrency: pickup.cancelConcurrency, includeMetadata: true, notifyPollingIntervalSeconds: pickup.backstopSeconds.cancel } as const;
      await queue.boss.work<CancelPredictionJob, void, typeof cancelWork>(QUEUES.cancelPrediction, cancelWork, async ([job]) => {
        if (job) await measured('cancel', job, () => cancelAtProvider(job));
      });
      // Jobs that failed for good (crashes, shutdowns past the retry limit) still end their generation.
      const deadWork = { includeMetadata: true, notifyPollingIntervalSeconds: pickup.backstopSeconds.dead } as const;
      await queue.boss.work<{ generationId: string }, void, typeof deadWork>(QUEUES.generationDead, deadWork, async ([job]) => {
        if (job) await measured('dead', job, () => failGeneration(db, job.data.generationId, undefined, 'internal_error', 'processing stopped repeatedly before it could finish'));
      });
    },
  };
}
