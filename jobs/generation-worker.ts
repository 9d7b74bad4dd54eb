// The worker: carries generations from 'queued' to a final state in three phases, each its own
// pg-boss queue, so no slot is held while the provider works:
//   create (kiln-generation) → wait (kiln-poll, or a webhook) → finish (kiln-finish)
// Every write is fenced by the attempt the worker claimed, so a worker that lost its job
// cannot overwrite a newer attempt's result.
import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { JobResult, JobWithMetadata } from 'pg-boss';
import type { Database, Generation } from '../db/schema.ts';
import type { Logger } from './logger.ts';
import { NO_JOB_METRICS, type JobMetrics, type JobPhase } from './metrics.ts';
import { createCreatePhase } from './phases/create-phase.ts';
import { createInputFiles } from './phases/input-files.ts';
import { createCopyPhase } from './phases/copy-phase.ts';
import { createDelivery } from './phases/deliver.ts';
import { createFinishPhase } from './phases/finish-phase.ts';
import { createAssemblePhase } from './phases/assemble-phase.ts';
import type { EarlierCreateSearch } from './phases/earlier-create.ts';
import { handleFailure } from './phases/failures.ts';
import { failGeneration } from './phases/outcomes.ts';
import { createPredictionUpdates, type PredictionUpdates } from './phases/prediction-updates.ts';
import { createWaitPhase, type WaitPhaseOptions } from './phases/wait-phase.ts';
import type { DownloadLimits } from './provider/download-output.ts';
import type { ImageProvider } from './provider/provider.ts';
import { QUEUES, isAssembleJob, isCopyJob, type AssembleJob, type CancelPredictionJob, type CopyJob, type FinishJob, type GenerationJob, type JobQueue, type PollJob } from './queue.ts';
import type { RenderLimits } from './render/render-variants.ts';
import type { AssetStorage } from './storage/storage.ts';
import { findGenerationForWork } from '../db/provider-work.ts';
import { startPhaseRun, type EndablePhaseRun } from './telemetry/phase-run.ts';
import type { JobContext } from './phases/failures.ts';

export interface GenerationWorkerOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  storage: AssetStorage;
  logger: Logger;
  /** Spans for each job run and its steps; a no-op tracer unless an SDK is configured. */
  tracer: Tracer;
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
    /** Input images uploaded to the provider: reused while they live this much longer; the lifetime assumed when the provider names none. */
    inputFiles: { reuseMarginSeconds: number; assumedLifetimeSeconds: number };
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
  /** The optimiser's margin around a product, as a share of its longer edge. */
  catalogueMarginShare: number;
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
  const { db, queue, provider, logger, tracer } = options;
  const metrics = options.metrics ?? NO_JOB_METRICS;
  const updates = createPredictionUpdates({ db, queue });
  const wait = createWaitPhase({
    db,
    queue,
    provider,
    updates,
    polls: options.polls,
    readsPerMinute: options.readsPerMinute,
    webhookBackstopMs: () => (options.webhooks.baseUrl() ? options.webhooks.backstopMs : undefined),
  });
  const create = createCreatePhase({
    db,
    queue,
    provider,
    wait,
    workerId: options.workerId,
    metrics,
    createSettleMs: options.create.settleMs,
    minCancelAfterSeconds: options.create.minCancelAfterSeconds,
    predictionTimeoutSeconds: options.create.predictionTimeoutSeconds,
    earlierCreate: options.create.earlierCreate,
    inputs: createInputFiles({
      db,
      provider,
      storage: options.storage,
      ...options.create.inputFiles,
      decode: { maxPixels: options.render.maxInputPixels, timeoutSeconds: options.render.timeoutSeconds },
    }),
    defer: options.defer,
    webhookUrl: (generation: Generation) => {
      const base = options.webhooks.baseUrl();
      // The generation's id rides in the URL: it tells the webhook which generation the news is for.
      return base ? `${base}/webhooks/replicate?${new URLSearchParams({ tag: generation.id })}` : undefined;
    },
  });
  const deliver = createDelivery({ db, queue, storage: options.storage, render: options.render, metrics });
  const finish = createFinishPhase({ db, provider, deliver, download: options.download });
  const copy = createCopyPhase({ db, storage: options.storage, deliver, workerId: options.workerId });
  const assemble = createAssemblePhase({ db, storage: options.storage, deliver, render: options.render, catalogueMarginShare: options.catalogueMarginShare, workerId: options.workerId });

  async function cancelAtProvider(job: CancelPredictionJob, context: JobContext): Promise<void> {
    // Read only for its ids: the cancel's line and span join the generation's request.
    const generation = await findGenerationForWork(db, job.generationId);
    if (generation) context.run.describe(generation);
    try {
      await context.run.step('provider cancel', { 'kiln.provider.operation': 'predictions.cancel', 'kiln.prediction_id': job.predictionId }, () =>
        provider.cancelPrediction(job.predictionId, context.signal), SpanKind.CLIENT);
      context.run.outcome('canceled');
    } catch (error) {
      // The generation is final already: nothing is written, whatever the table decides.
      await handleFailure('cancel', error, context, { db });
    }
  }

  /**
   * Runs one job as `phase`: its line and span (see telemetry/phase-run.ts), and its metrics —
   * its wait (from when it was due, by the database's clock), run time and outcome.
   */
  async function observed<T extends { generationId: string; predictionId?: string }>(
    phase: JobPhase,
    queueName: string,
    job: JobWithMetadata<T>,
    work: (data: T, context: JobContext) => Promise<void>,
  ): Promise<void> {
    const run: EndablePhaseRun = startPhaseRun({
      tracer,
      logger,
      phase,
      queue: queueName,
      jobId: job.id,
      retry: job.retryCount,
      generationId: job.data.generationId,
      predictionId: job.data.predictionId,
    });
    const startedAt = performance.now();
    const waitedSeconds = Math.max(0, (job.startedOn.getTime() - job.startAfter.getTime()) / 1000);
    try {
      await work(job.data, { signal: job.signal, retryCount: job.retryCount, retryLimit: job.retryLimit, run });
      run.end();
      metrics.jobRan(phase, 'completed', { waitedSeconds, ranSeconds: (performance.now() - startedAt) / 1000 });
    } catch (error) {
      run.end(error);
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
      // Delayed jobs (polls, retries, deferrals) send no NOTIFY when they come due: those this
      // process delays wake its own loops when due (due-alarms.ts), and the backstop poll
      // (`backstopSeconds`) finds the rest.
      const phase = async <T>(name: string, slots: number, loops: number, backstopSeconds: number, run: (job: JobWithMetadata<T>) => Promise<void>) => {
        const options = {
          localConcurrency: loops,
          batchSize: Math.max(2, Math.ceil(slots / loops)), // burstWhenBatchFull needs batches of 2 or more
          burstWhenBatchFull: true,
          perJobResults: true,
          includeMetadata: true,
          pollingIntervalSeconds: pickup.pollingIntervalSeconds,
          notifyPollingIntervalSeconds: backstopSeconds,
        } as const;
        const workerId = await queue.boss.work<T, unknown, typeof options>(name, options, (jobs) =>
          Promise.all(
            jobs.map(async (job): Promise<JobResult> => {
              try {
                await run(job);
                return { id: job.id, status: 'completed' };
              } catch (error) {
                return { id: job.id, status: 'failed', output: { message: error instanceof Error ? error.message : String(error) } };
              }
            }),
          ),
        );
        queue.wakeWhenDue(name, workerId);
      };
      const { concurrency, pickup } = options;
      await phase<GenerationJob>(QUEUES.generation, concurrency.create, pickup.createLoops, pickup.backstopSeconds.create, (job) =>
        observed('create', QUEUES.generation, job, create.run),
      );
      await phase<PollJob>(QUEUES.poll, concurrency.poll, 1, pickup.backstopSeconds.poll, (job) => observed('poll', QUEUES.poll, job, wait.run));
      await phase<FinishJob | CopyJob | AssembleJob>(QUEUES.finish, concurrency.finish, 1, pickup.backstopSeconds.finish, (job) => {
        const { data } = job;
        if (isAssembleJob(data)) return observed('assemble', QUEUES.finish, { ...job, data }, assemble.run);
        return isCopyJob(data) ? observed('copy', QUEUES.finish, { ...job, data }, copy.run) : observed('finish', QUEUES.finish, { ...job, data }, finish.run);
      });
      const cancelWork = { localConcurrency: pickup.cancelConcurrency, includeMetadata: true, notifyPollingIntervalSeconds: pickup.backstopSeconds.cancel } as const;
      await queue.boss.work<CancelPredictionJob, void, typeof cancelWork>(QUEUES.cancelPrediction, cancelWork, async ([job]) => {
        if (job) await observed('cancel', QUEUES.cancelPrediction, job, cancelAtProvider);
      });
      // Jobs that failed for good (crashes, shutdowns past the retry limit) still end their generation.
      const deadWork = { includeMetadata: true, notifyPollingIntervalSeconds: pickup.backstopSeconds.dead } as const;
      await queue.boss.work<{ generationId: string }, void, typeof deadWork>(QUEUES.generationDead, deadWork, async ([job]) => {
        if (!job) return;
        await observed('dead', QUEUES.generationDead, job, async (data, { run }) => {
          const generation = await findGenerationForWork(db, data.generationId);
          if (generation) run.describe(generation);
          await failGeneration(db, data.generationId, undefined, 'internal_error', 'processing stopped repeatedly before it could finish');
          run.outcome('failed');
        });
      });
    },
  };
}
