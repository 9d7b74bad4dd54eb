// The create phase: one job per generation. It claims the next attempt, then creates the
// prediction — or resumes the one an earlier attempt stored, or recovers the one an earlier
// attempt sent but never stored — stores its id at once and hands over to the wait phase. The
// job ends there: no worker slot is held while the provider works. A generation that starts
// from an image, or shows the model reference images, names each by the URL of the provider's
// file of it, uploaded once (input-files.ts); all of a create's images are prepared at once.
import type { Kysely, Transaction } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import { retryWhileDatabaseUnavailable } from '../../db/database-unavailable.ts';
import { followIdentical } from '../../db/cache.ts';
import { startAttempt, transition } from '../../db/generations.ts';
import { clearCreateIntent, findGenerationForWork, forgetProviderStatus, markCreateSettled, recordCreateIntent } from '../../db/provider-work.ts';
import { describeInputImage, inputImageOrigin, type Database, type Generation, type InputImageJson } from '../../db/schema.ts';
import { SpanKind } from '@opentelemetry/api';
import type { JobMetrics } from '../metrics.ts';
import type { PhaseRun } from '../telemetry/phase-run.ts';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from '../provider/errors.ts';
import { isModelId, modelDefinition } from '../provider/models.ts';
import type { ImageProvider, Prediction } from '../provider/provider.ts';
import type { GenerationJob, JobQueue } from '../queue.ts';
import { NOT_STARTED_BEFORE_DEADLINE, cancelAfterSeconds, isPastDeadline, predictionDeadline } from './deadlines.ts';
import { findEarlierPrediction, type EarlierCreateSearch } from './earlier-create.ts';
import { handleFailure, type JobContext } from './failures.ts';
import { UnusableSourceError, type InputFileUrl, type InputFiles } from './input-files.ts';
import { failGeneration, modelRequestOf, storedRequest } from './outcomes.ts';
import type { WaitPhase } from './wait-phase.ts';

export interface CreatePhaseOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  wait: WaitPhase;
  /** Names this worker in the events it writes. */
  workerId: string;
  /** Where a generation's wait in Kiln's queue is reported when its first attempt starts. */
  metrics: JobMetrics;
  /** Longest a create call may take, retries included (it is cut off then): an older unstored create has settled. */
  createSettleMs: number;
  /** The shortest Cancel-After the provider accepts. */
  minCancelAfterSeconds: number;
  /** How long a prediction may run at the provider (unless the caller's deadline comes sooner). */
  predictionTimeoutSeconds: number;
  /** A deferred job's wait: at least `minMs`, stretched by up to `jitter` so deferred jobs do not return together. */
  defer: { minMs: number; jitter: number };
  earlierCreate: EarlierCreateSearch;
  /** Where an input image's provider URL comes from (uploaded once per file lifetime). */
  inputs: InputFiles;
  /** Where the provider should report back for this attempt, if Kiln can be reached. */
  webhookUrl: (generation: Generation) => string | undefined;
}

/** An input image with the provider URL it goes by; `reference`: its place among the references, null for the source. */
interface PreparedInput {
  image: InputImageJson;
  reference: number | null;
  file: InputFileUrl;
}

export function createCreatePhase(options: CreatePhaseOptions) {
  const { db, queue, provider } = options;

  /** Back to the queue for a while: not a failure, and not a retry. */
  async function defer(generation: Generation, retryInMs: number, reason: string): Promise<void> {
    const delayMs = Math.max(options.defer.minMs, retryInMs) * (1 + Math.random() * options.defer.jitter);
    await db.transaction().execute(async (trx) => {
      const requeued = await transition(trx, {
        id: generation.id,
        attempt: generation.attempt,
        fromStates: ['running'],
        set: { state: 'queued' },
        stage: 'deferred',
        data: { reason, retryInMs: Math.round(delayMs) },
      });
      if (requeued) await queue.deferGeneration(trx, { generationId: generation.id, priority: generation.priority }, delayMs);
    });
  }

  /** Stores the prediction's id (fenced) and schedules the first poll, in one transaction. */
  async function store(generation: Generation, prediction: Prediction, until: Date, recovered: boolean, run: PhaseRun): Promise<void> {
    const { logger } = run;
    run.notePrediction(prediction.id);
    await db.transaction().execute(async (trx) => {
      const stored = await storePrediction(trx, generation, prediction, until, recovered);
      if (!stored) {
        const now = await findGenerationForWork(trx, generation.id);
        const active = now?.state === 'running' || now?.state === 'queued';
        const stillLookedFor = active && (now.prediction_id === prediction.id || (now.prediction_id === null && now.create_sent_attempt === generation.attempt));
        if (stillLookedFor) {
          // A newer attempt took over while this create was out: it waits for this create to
          // settle and then finds the prediction among the recent ones (or has already), so
          // leave it be. Any other prediction of a superseded attempt is canceled below.
          logger.info('a newer attempt took over while the prediction was created; leaving it to that attempt');
          run.outcome('superseded');
          return;
        }
        // Canceled, ended, or another prediction is used: do not leave this one running and billing.
        logger.info('the generation no longer needs this prediction; canceling it');
        await queue.enqueueCancelPrediction(trx, { generationId: generation.id, predictionId: prediction.id });
        run.outcome('not-needed');
        return;
      }
      // A recovered prediction's age is unknown here (0): it is polled soon and not learnt from.
      await options.wait.schedule(trx, stored, { predictionId: prediction.id, polls: 0, createdAt: recovered ? 0 : Date.now(), soon: recovered });
      run.outcome(recovered ? 'recovered' : 'created');
    });
  }

  /** The fenced write of the prediction's id; undefined when this attempt no longer owns the generation. */
  async function storePrediction(trx: Transaction<Database>, generation: Generation, prediction: Prediction, until: Date, recovered: boolean): Promise<Generation | undefined> {
    try {
      return await transition(trx, {
        id: generation.id,
        attempt: generation.attempt,
        fromStates: ['running'],
        // provider_status stays unset: the prediction's news (even if it has finished already, as
        // a recovered one may have) is for the wait phase to act on.
        set: { prediction_id: prediction.id, prediction_deadline_at: until, create_sent_attempt: null, create_sent_at: null, create_settles_at: null },
        stage: 'provider.created',
        data: { predictionId: prediction.id, model: generation.model, status: prediction.status, ...(recovered ? { recovered: true } : {}) },
      });
    } catch (error) {
      // Another generation adopted the same recovered prediction first (prediction ids are unique).
      if (recovered && isUniqueViolation(error)) {
        throw new TransientProviderError('another generation holds the recovered prediction', { publicReason: 'retrying', ambiguous: false, cause: error });
      }
      throw error;
    }
  }

  /**
   * Identical work queued in an overlapping transaction could not be seen at insert: follow it
   * now, before a create (db/cache.ts); served from a success at once, it gets its copy.
   */
  async function followIdenticalWork(generation: Generation): Promise<boolean> {
    if (!generation.may_reuse || generation.create_sent_attempt !== null) return false;
    return db.transaction().execute(async (trx) => {
      const followed = await followIdentical(trx, { id: generation.id, attempt: generation.attempt });
      if (followed?.kind === 'cache') await queue.enqueueCopies(trx, [{ generationId: generation.id, copyOf: followed.generationId }]);
      return followed !== undefined;
    });
  }

  async function createOrResume(generation: Generation, signal: AbortSignal, slotBooked: boolean, run: PhaseRun): Promise<void> {
    const { id, attempt } = generation;
    if (generation.prediction_id) {
      // An earlier attempt created it: wait for it, never create again. What that attempt heard
      // is forgotten so that this one acts on the prediction's news (even a final status).
      const predictionId = generation.prediction_id;
      await db.transaction().execute(async (trx) => {
        await forgetProviderStatus(trx, id, attempt);
        await options.wait.schedule(trx, generation, { predictionId, polls: 0, createdAt: 0, soon: true });
      });
      run.outcome('resumed');
      return;
    }
    if (isPastDeadline(generation)) {
      run.outcome('past-deadline');
      return failGeneration(db, id, attempt, NOT_STARTED_BEFORE_DEADLINE.code, NOT_STARTED_BEFORE_DEADLINE.message);
    }
    if (await followIdenticalWork(generation)) return run.outcome('followed-identical');
    if (!isModelId(generation.model)) throw new PermanentProviderError(`unknown model ${generation.model}`);
    const model = modelDefinition(generation.model);
    const request = storedRequest.parse(generation.request);
    // Before the create intent: an upload is no create, and a later attempt finds the same files again.
    const { prepared, failure } = await inputUrls(request.input, request.references, signal, run);
    for (const { image: inputImage, reference, file } of prepared) {
      if (!file.uploaded) continue;
      const { fileId, expiresAt, bytes } = file.uploaded;
      const data = { ...inputImageOrigin(inputImage), ...(reference === null ? {} : { reference }), fileId, bytes, expiresAt: expiresAt.toISOString() };
      const noted = await transition(db, { id, attempt, fromStates: ['running'], stage: 'provider.input_uploaded', data });
      if (!noted) return run.outcome('stale');
    }
    if (failure) throw failure.error;
    const image = request.input ? (prepared[0]?.file.url ?? null) : null;
    const references = prepared.filter((input) => input.reference !== null).map((input) => input.file.url);
    const input = model.buildInput(modelRequestOf(generation.prompt, request), image, references);

    if (generation.create_sent_attempt !== null && generation.create_sent_at !== null) {
      // An earlier attempt sent a create and did not store what came of it.
      const settledInMs = (generation.create_settles_at?.getTime() ?? 0) - Date.now();
      if (settledInMs > 0) {
        run.outcome('deferred');
        return defer(generation, settledInMs, 'an earlier create may still be under way');
      }
      const sentAt = generation.create_sent_at;
      const earlier = await run.step('provider list', { 'kiln.provider.operation': 'predictions.list' }, () =>
        findEarlierPrediction({ db, provider, search: options.earlierCreate }, { sentAt, route: model.route, input }, signal), SpanKind.CLIENT);
      if (earlier) {
        run.logger.info('found the prediction an earlier attempt created; resuming it', { predictionId: earlier.id });
        // Its run limit counts from when that create was sent.
        return store(generation, earlier, predictionDeadline(generation, options.predictionTimeoutSeconds, sentAt.getTime()), true, run);
      }
    }

    if (!(await recordCreateIntent(db, id, attempt, options.createSettleMs))) return run.outcome('stale'); // no longer ours
    let prediction: Prediction;
    // The whole call, retries included, is bounded: a later attempt can then tell when this one settled.
    const settled = AbortSignal.timeout(options.createSettleMs);
    const until = predictionDeadline(generation, options.predictionTimeoutSeconds);
    try {
      const webhook = options.webhookUrl(generation);
      prediction = await run.step('provider create', { 'kiln.provider.operation': 'predictions.create', 'kiln.model': generation.model }, () =>
        provider.createPrediction(
          // The provider ends the prediction at its limit too (`aborted` if it never started: not billed).
          { route: model.route, input, cancelAfterSeconds: cancelAfterSeconds(until, options.minCancelAfterSeconds), ...(webhook ? { webhook } : {}), slotBooked },
          AbortSignal.any([signal, settled]),
        ), SpanKind.CLIENT);
    } catch (error) {
      if (provablyNotSent(error)) await clearCreateIntent(db, id, attempt);
      else await markCreateSettled(db, id, attempt);
      if (settled.aborted && !signal.aborted) {
        throw new TransientProviderError(`create did not settle within ${options.createSettleMs} ms`, { publicReason: 'the provider did not answer in time', ambiguous: true, cause: error });
      }
      throw error;
    }
    // The prediction exists: its id is stored through a database outage rather than left for the
    // next attempt to find among the provider's list (until the job is taken from us). A commit
    // whose answer was lost may have stored it already.
    let tries = 0;
    await retryWhileDatabaseUnavailable(async () => {
      if (tries++ > 0 && (await findGenerationForWork(db, id))?.prediction_id === prediction.id) return;
      await store(generation, prediction, until, false, run);
    }, signal);
  }

  /**
   * The provider URL of every input image — the source, then each reference — prepared at once,
   * each uploaded at most once per file lifetime (input-files.ts). All are waited for, so that the
   * uploads that went through are reported even when another image fails; `failure` is the first
   * (in request order) that could not be prepared, a reference named by its field.
   */
  async function inputUrls(source: InputImageJson | null, references: readonly InputImageJson[], signal: AbortSignal, run: PhaseRun): Promise<{ prepared: PreparedInput[]; failure: { error: unknown } | null }> {
    const images = [...(source ? [{ image: source, reference: null }] : []), ...references.map((image, reference) => ({ image, reference }))];
    const settled = await Promise.allSettled(
      images.map(({ image, reference }) =>
        run.step('provider input', { 'kiln.input': describeInputImage(image), ...(reference === null ? {} : { 'kiln.reference': reference }) }, () => options.inputs.urlFor(image, signal), SpanKind.CLIENT),
      ),
    );
    const prepared = images.flatMap((input, index) => {
      const result = settled[index];
      return result?.status === 'fulfilled' ? [{ ...input, file: result.value }] : [];
    });
    const failed = settled.findIndex((result) => result.status === 'rejected');
    const failure = settled[failed];
    if (failure?.status !== 'rejected') return { prepared, failure: null };
    const reference = images[failed]?.reference ?? null;
    const error: unknown = failure.reason;
    const named = reference !== null && error instanceof UnusableSourceError ? new UnusableSourceError(`reference ${reference + 1} (references.${reference}): ${error.message}`, { cause: error }) : error;
    return { prepared, failure: { error: named } };
  }

  return {
    async run(job: GenerationJob, context: JobContext): Promise<void> {
      const { run, signal } = context;
      // A dispatched job's first run waits for the create slot the dispatcher booked for it (a
      // short wait: the dispatch horizon) and books none of its own; a retry, or a job deferred
      // back to the queue, books its own slot like any provider call.
      const { slotAt } = job;
      const slotBooked = slotAt !== undefined && context.retryCount === 0;
      if (slotBooked && slotAt > Date.now()) await sleep(slotAt - Date.now(), undefined, { signal });
      const generation = await startAttempt(db, job.generationId, { retry: context.retryCount, worker: options.workerId });
      if (!generation) return run.outcome('stale'); // canceled while queued, or already finished
      run.describe(generation);
      if (generation.attempt === 1) options.metrics.generationStarted(Math.max(0, (Date.now() - generation.created_at.getTime()) / 1000));
      try {
        await createOrResume(generation, signal, slotBooked, run);
      } catch (error) {
        await handleFailure('create', error, context, {
          db,
          generation,
          defer: (inMs, reason) => defer(generation, inMs, reason),
        });
      }
    },
  };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '23505';
}

/** Errors that prove the create never reached the provider, so no prediction can exist. */
function provablyNotSent(error: unknown): boolean {
  return (
    error instanceof RateLimitedError ||
    error instanceof ProviderUnavailableError ||
    error instanceof PermanentProviderError ||
    (error instanceof TransientProviderError && !error.ambiguous)
  );
}
