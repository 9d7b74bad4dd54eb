// The worker: takes generation jobs from pg-boss and carries each generation from
// 'queued' to a final state. Every write is fenced by the attempt number this worker
// claimed, so a worker that lost its job cannot overwrite a newer attempt's result.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { JobWithMetadata } from 'pg-boss';
import { z } from 'zod';
import { completeGeneration, currentState, startAttempt, transition } from '../db/generations.ts';
import type { Database, Generation } from '../db/schema.ts';
import type { Logger } from './logger.ts';
import { downloadOutput, type DownloadLimits } from './provider/download-output.ts';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from './provider/errors.ts';
import { ASPECT_RATIOS, MODELS, isModelId } from './provider/models.ts';
import { FINAL_PREDICTION_STATUSES, type ImageProvider, type Prediction } from './provider/provider.ts';
import { QUEUES, type CancelPredictionJob, type GenerationJob, type JobQueue } from './queue.ts';
import { CONTENT_TYPES, CROP_STRATEGIES, FILE_EXTENSIONS, IMAGE_FORMATS, PLATFORMS, variantSpecs } from './render/presets.ts';
import { UnusableImageError, renderVariants, type RenderLimits } from './render/render-variants.ts';
import type { AssetStorage } from './storage/storage.ts';

export interface GenerationWorkerOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  storage: AssetStorage;
  logger: Logger;
  /** Names this worker in the events it writes (host, process and instance). */
  workerId: string;
  /** Generations handled at once by this process (each mostly waits on the provider). */
  concurrency: number;
  /** A generation not finished this long after it was queued fails with a timeout. */
  deadlineSeconds: number;
  pollInitialMs: number;
  pollMaxMs: number;
  download: DownloadLimits;
  render: RenderLimits;
}

export interface GenerationWorker {
  start(): Promise<void>;
}

/** Why a generation failed, as stored and shown to clients. */
type FailureCode = 'provider_failed' | 'provider_rejected' | 'provider_unavailable' | 'provider_canceled' | 'deadline_exceeded' | 'unusable_output' | 'internal_error';

/** The request as the API stored it; parsed rather than trusted, since it crossed a database. */
const storedRequest = z.object({
  platforms: z.array(z.enum(PLATFORMS)),
  customSizes: z.array(z.object({ width: z.int().positive(), height: z.int().positive() })),
  formats: z.array(z.enum(IMAGE_FORMATS)),
  crop: z.enum(CROP_STRATEGIES),
  aspectRatio: z.enum(ASPECT_RATIOS),
  seed: z.int().nullable(),
  negativePrompt: z.string().nullable(),
});

export function createGenerationWorker(options: GenerationWorkerOptions): GenerationWorker {
  const { db, queue, provider, logger } = options;

  async function fail(id: string, attempt: number | undefined, code: FailureCode, message: string): Promise<void> {
    await transition(db, {
      id,
      ...(attempt === undefined ? {} : { attempt }),
      fromStates: ['queued', 'running'],
      set: { state: 'failed', finished_at: new Date(), error_code: code, error_message: message },
      stage: 'failed',
      data: { code, message },
    });
  }

  /** Cancel at the provider through the queue, so a failed attempt is retried, not forgotten. */
  async function cancelPrediction(generationId: string, predictionId: string): Promise<void> {
    await queue.enqueueCancelPrediction(db, { generationId, predictionId });
  }

  async function runGeneration(job: JobWithMetadata<GenerationJob>): Promise<void> {
    const generation = await startAttempt(db, job.data.generationId, { retry: job.retryCount, worker: options.workerId });
    if (!generation) return; // canceled while queued, or already finished by an earlier attempt
    const { id, attempt } = generation;
    const signal = job.signal;
    try {
      const prediction = await obtainPrediction(generation, signal);
      if (!prediction) return;
      const finished = await waitForPrediction(generation, prediction, signal);
      if (!finished) return;
      await finishFromPrediction(generation, finished, signal);
    } catch (error) {
      if (signal.aborted) throw error; // shutting down: pg-boss hands the job to the next worker
      if (error instanceof RateLimitedError || error instanceof ProviderUnavailableError) return defer(generation, error);
      if (error instanceof PermanentProviderError) return fail(id, attempt, 'provider_rejected', error.publicReason);
      if (error instanceof UnusableImageError) return fail(id, attempt, 'unusable_output', error.message);
      const transient = error instanceof TransientProviderError;
      const detail = error instanceof Error ? error.message : String(error);
      const reason = transient ? error.publicReason : 'internal error';
      if (transient) logger.warn('generation attempt failed', { generationId: id, error: detail });
      else logger.error('generation attempt failed unexpectedly', { generationId: id, error: detail, stack: error instanceof Error ? error.stack : undefined });
      if (job.retryCount >= job.retryLimit) {
        return fail(id, attempt, transient ? 'provider_unavailable' : 'internal_error', transient ? `the provider kept failing: ${reason}` : 'processing failed repeatedly');
      }
      await transition(db, { id, attempt, fromStates: ['running'], stage: 'retrying', data: { reason, retry: job.retryCount + 1 } });
      throw error; // pg-boss retries with exponential backoff and jitter
    }
  }

  /**
   * The provider cannot take the call yet (our shared rate limit is booked ahead, or its
   * breaker is open): back to the queue until then. Not a failure, and not a retry.
   */
  async function defer(generation: Generation, reason: RateLimitedError | ProviderUnavailableError): Promise<void> {
    const delayMs = Math.max(250, reason.retryInMs) * (1 + Math.random() * 0.2); // spread the returns
    await db.transaction().execute(async (trx) => {
      const requeued = await transition(trx, {
        id: generation.id,
        attempt: generation.attempt,
        fromStates: ['running'],
        set: { state: 'queued' },
        stage: 'deferred',
        data: { reason: reason.publicReason, retryInMs: Math.round(delayMs) },
      });
      if (requeued) await queue.deferGeneration(trx, { generationId: generation.id, priority: generation.priority }, delayMs);
    });
  }

  /** One poll; undefined (after waiting) when the provider cannot be asked right now. */
  async function poll(predictionId: string, signal: AbortSignal): Promise<Prediction | undefined> {
    try {
      return await provider.getPrediction(predictionId, signal);
    } catch (error) {
      if (!(error instanceof RateLimitedError || error instanceof ProviderUnavailableError)) throw error;
      await sleep(error.retryInMs, undefined, { signal });
      return undefined;
    }
  }

  /** Creates the prediction, or resumes the one an earlier attempt already created. */
  async function obtainPrediction(generation: Generation, signal: AbortSignal): Promise<Prediction | undefined> {
    if (generation.prediction_id) return provider.getPrediction(generation.prediction_id, signal);
    if (!isModelId(generation.model)) throw new PermanentProviderError(`unknown model ${generation.model}`);
    const remainingSeconds = options.deadlineSeconds - (Date.now() - generation.created_at.getTime()) / 1000;
    if (remainingSeconds <= 0) {
      // Never start a billed prediction that is already late.
      await fail(generation.id, generation.attempt, 'deadline_exceeded', `not started within the ${options.deadlineSeconds}s deadline`);
      return undefined;
    }
    const model = MODELS[generation.model];
    const request = storedRequest.parse(generation.request);
    const prediction = await provider.createPrediction(
      {
        route: model.route,
        input: model.buildInput({ prompt: generation.prompt, negativePrompt: request.negativePrompt, aspectRatio: request.aspectRatio, seed: request.seed }),
        cancelAfterSeconds: Math.max(5, remainingSeconds),
      },
      signal,
    );
    const stored = await transition(db, {
      id: generation.id,
      attempt: generation.attempt,
      fromStates: ['running'],
      set: { prediction_id: prediction.id },
      stage: 'provider.created',
      data: { predictionId: prediction.id, model: generation.model, status: prediction.status },
    });
    if (!stored) {
      // Canceled (or superseded) while we were creating it: do not leave it running and billing.
      logger.info('generation stopped while its prediction was created; canceling it', { generationId: generation.id, predictionId: prediction.id });
      await cancelPrediction(generation.id, prediction.id);
      return undefined;
    }
    return prediction;
  }

  /** Polls until the prediction is final; undefined if the generation stopped being ours. */
  async function waitForPrediction(generation: Generation, initial: Prediction, signal: AbortSignal): Promise<Prediction | undefined> {
    let prediction = initial;
    let delay = options.pollInitialMs;
    let reportedProgress: number | null | undefined;
    const deadline = generation.created_at.getTime() + options.deadlineSeconds * 1000;
    while (!FINAL_PREDICTION_STATUSES.includes(prediction.status)) {
      if (prediction.status === 'processing' && prediction.progress !== reportedProgress) {
        reportedProgress = prediction.progress;
        await transition(db, {
          id: generation.id,
          attempt: generation.attempt,
          fromStates: ['running'],
          stage: 'provider.processing',
          data: { progress: prediction.progress },
        });
      }
      await sleep(delay, undefined, { signal });
      delay = Math.min(options.pollMaxMs, Math.round(delay * 1.5));
      const state = await currentState(db, generation.id);
      if (state?.state !== 'running' || state.attempt !== generation.attempt) {
        // Canceled by the client (whose cancel already queued the provider cancel), or superseded.
        return undefined;
      }
      if (Date.now() > deadline) {
        await cancelPrediction(generation.id, prediction.id);
        await fail(generation.id, generation.attempt, 'deadline_exceeded', `not finished within the ${options.deadlineSeconds}s deadline`);
        return undefined;
      }
      prediction = (await poll(prediction.id, signal)) ?? prediction;
    }
    return prediction;
  }

  async function finishFromPrediction(generation: Generation, prediction: Prediction, signal: AbortSignal): Promise<void> {
    const { id, attempt } = generation;
    switch (prediction.status) {
      case 'failed':
        return fail(id, attempt, 'provider_failed', prediction.error ?? 'the model failed without giving a reason');
      case 'canceled':
        return fail(id, attempt, 'provider_canceled', 'the provider canceled the prediction');
      case 'aborted':
        return fail(id, attempt, 'deadline_exceeded', 'the prediction did not start before its deadline');
      default:
        break;
    }
    const [outputUrl] = prediction.output;
    if (!outputUrl) return fail(id, attempt, 'unusable_output', 'the provider reported success but returned no image');

    const fenced = (stage: string, data: Record<string, unknown>) => transition(db, { id, attempt, fromStates: ['running'], stage, data });
    if (!(await fenced('downloading', { predictionId: prediction.id }))) return;
    const source = await downloadOutput(provider, outputUrl, options.download, signal);

    const request = storedRequest.parse(generation.request);
    const specs = variantSpecs(request.platforms, request.customSizes, request.formats);
    if (!(await fenced('rendering', { variants: specs.length, sourceBytes: source.length }))) return;
    const rendered = await renderVariants(source, specs, request.crop, options.render);

    const images = [rendered.original, ...rendered.variants];
    const assets = images.map((image) => ({
      kind: image.platform === null ? ('original' as const) : ('variant' as const),
      platform: image.platform,
      format: image.format,
      width: image.width,
      height: image.height,
      bytes: image.bytes.length,
      content_hash: image.contentHash,
      storage_key: `${image.contentHash}.${FILE_EXTENSIONS[image.format]}`,
      content_type: CONTENT_TYPES[image.format],
    }));
    await Promise.all(images.map((image, index) => options.storage.put(assets[index]!.storage_key, image.bytes)));
    if (!(await fenced('stored', { assets: assets.length }))) return;
    await completeGeneration(db, { id, attempt, assets, data: { assets: assets.length, predictionId: prediction.id } });
  }

  async function cancelAtProvider(job: JobWithMetadata<CancelPredictionJob>): Promise<void> {
    try {
      await provider.cancelPrediction(job.data.predictionId, job.signal);
    } catch (error) {
      if (error instanceof PermanentProviderError) return; // already gone or final: nothing to cancel
      throw error;
    }
  }

  /** Jobs that failed for good (crashes, shutdowns past the retry limit) still end their generation. */
  async function failDeadLettered(job: JobWithMetadata<GenerationJob>): Promise<void> {
    await fail(job.data.generationId, undefined, 'internal_error', 'processing stopped repeatedly before it could finish');
  }

  return {
    async start() {
      // Each of the `concurrency` pg-boss workers takes one job at a time. A NOTIFY wakes them for
      // new jobs; after a job, a worker fetches again at once while the queue has a backlog
      // (burstWhenReadyExceeds) instead of sleeping; retries and delayed jobs (which send no
      // NOTIFY) are found by the 2-second backstop poll.
      const generationWork = {
        localConcurrency: options.concurrency,
        batchSize: 1,
        includeMetadata: true,
        pollingIntervalSeconds: 1,
        notifyPollingIntervalSeconds: 2,
        burstWhenReadyExceeds: 1,
      } as const;
      await queue.boss.work<GenerationJob, void, typeof generationWork>(QUEUES.generation, generationWork, async ([job]) => {
        if (job) await runGeneration(job);
      });
      const cancelWork = { localConcurrency: 4, includeMetadata: true, notifyPollingIntervalSeconds: 5 } as const;
      await queue.boss.work<CancelPredictionJob, void, typeof cancelWork>(QUEUES.cancelPrediction, cancelWork, async ([job]) => {
        if (job) await cancelAtProvider(job);
      });
      const deadWork = { includeMetadata: true, notifyPollingIntervalSeconds: 5 } as const;
      await queue.boss.work<GenerationJob, void, typeof deadWork>(QUEUES.generationDead, deadWork, async ([job]) => {
        if (job) await failDeadLettered(job);
      });
    },
  };
}
