// The wait phase: while the provider works, no worker slot is held. Each poll is its own
// delayed job. Without webhooks, polls are the path: the first near the time the model usually
// takes, then backing off. With webhooks, a poll is only the backstop for a webhook that never
// came. Either way polls are spaced so that all of them together fit in the share of the read
// budget left to them, and the last one falls on the deadline, which it enforces.
import type { Kysely, Transaction } from 'kysely';
import { advancePollSeq, countAwaitingProvider, findGenerationForWork } from '../../db/provider-work.ts';
import type { Database, Generation } from '../../db/schema.ts';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from '../provider/errors.ts';
import type { ImageProvider, Prediction } from '../provider/provider.ts';
import type { JobQueue, PollJob } from '../queue.ts';
import { deadlineOf, failGeneration } from './outcomes.ts';
import type { PredictionUpdates } from './prediction-updates.ts';

export interface WaitPhaseOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  updates: PredictionUpdates;
  defaultDeadlineSeconds: number;
  pollInitialMs: number;
  pollMaxMs: number;
  /** The shared read budget (polls, cancels, lists) per minute. */
  readsPerMinute: number;
  /** Set when predictions report back by webhook: then a poll is only a backstop, this long after the expected finish. */
  webhookBackstopMs: () => number | undefined;
}

/** Polls may use this share of the read budget; the rest stays free for cancels and lookups. */
const POLL_SHARE_OF_READS = 0.8;
const AWAITING_COUNT_TTL_MS = 5_000;

export interface PollPlan {
  predictionId: string;
  /** This poll's number within the attempt. */
  polls: number;
  /** When the prediction was created (ms since the epoch), or 0 when unknown. */
  createdAt: number;
  soon?: boolean;
}

export interface WaitPhase {
  /**
   * Schedules the next poll of a generation's prediction. `soon`: look shortly, webhooks or not —
   * for a prediction found again after a crash or a lost answer, whose webhooks may have come and
   * gone while it was not ours.
   */
  schedule(trx: Kysely<Database> | Transaction<Database>, generation: Generation, poll: PollPlan, after?: number): Promise<void>;
  run(job: PollJob, signal: AbortSignal): Promise<void>;
}

export function createWaitPhase(options: WaitPhaseOptions): WaitPhase {
  const { db, queue, provider } = options;
  /** Per model: a moving average of how long its predictions take, learnt from our polls. */
  const typicalMs = new Map<string, number>();
  let awaiting = { count: 0, readAt: -Infinity };

  async function awaitingCount(): Promise<number> {
    if (performance.now() - awaiting.readAt > AWAITING_COUNT_TTL_MS) awaiting = { count: await countAwaitingProvider(db), readAt: performance.now() };
    return awaiting.count;
  }

  function learn(model: string, tookMs: number): void {
    const before = typicalMs.get(model);
    typicalMs.set(model, before === undefined ? tookMs : before * 0.8 + tookMs * 0.2);
  }

  async function delayFor(generation: Generation, { polls, createdAt, soon }: PollPlan): Promise<number> {
    const typical = typicalMs.get(generation.model);
    let delay: number;
    const backstopMs = options.webhookBackstopMs();
    if (soon) {
      delay = options.pollInitialMs;
    } else if (backstopMs !== undefined) {
      delay = Math.max(0, (createdAt || Date.now()) + (typical ?? 0) - Date.now()) + backstopMs;
    } else if (polls === 0) {
      delay = Math.max(options.pollInitialMs, (typical ?? 0) * 0.8);
    } else {
      delay = Math.min(options.pollMaxMs, options.pollInitialMs * 1.5 ** polls);
    }
    // Every prediction we wait on polls at this pace at most, so all polls fit in their share.
    const spacingMs = (await awaitingCount()) / ((options.readsPerMinute * POLL_SHARE_OF_READS) / 60_000);
    delay = Math.max(delay, spacingMs);
    const untilDeadline = deadlineOf(generation, options.defaultDeadlineSeconds).getTime() - Date.now();
    return Math.max(0, Math.min(delay, untilDeadline));
  }

  /** `after`: the poll that schedules this one (undefined for an attempt's first). */
  async function schedule(trx: Kysely<Database> | Transaction<Database>, generation: Generation, poll: PollPlan, after?: number) {
    const delayMs = await delayFor(generation, poll);
    const { predictionId, polls, createdAt } = poll;
    if (!(await advancePollSeq(trx, { id: generation.id, attempt: generation.attempt, after, next: polls }))) return; // a twin run got there first
    await queue.enqueuePoll(trx, { generationId: generation.id, attempt: generation.attempt, predictionId, polls, createdAt }, delayMs);
  }

  async function get(job: PollJob, generation: Generation, signal: AbortSignal): Promise<Prediction | undefined> {
    try {
      return await provider.getPrediction(job.predictionId, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof PermanentProviderError) {
        await failGeneration(db, generation.id, generation.attempt, 'provider_failed', `the provider no longer knows the prediction: ${error.publicReason}`);
        return undefined;
      }
      if (error instanceof RateLimitedError || error instanceof ProviderUnavailableError || error instanceof TransientProviderError) {
        // Not this prediction's fault: ask again later (the deadline still bounds the wait).
        const laterMs = Math.max(error instanceof TransientProviderError ? options.pollMaxMs : error.retryInMs, options.pollInitialMs);
        const delay = Math.min(laterMs, Math.max(0, deadlineOf(generation, options.defaultDeadlineSeconds).getTime() - Date.now()));
        await queue.enqueuePoll(db, { ...job }, delay);
        return undefined;
      }
      throw error;
    }
  }

  return {
    schedule,
    async run(job, signal) {
      const generation = await findGenerationForWork(db, job.generationId);
      if (!generation || generation.state !== 'running' || generation.attempt !== job.attempt || generation.prediction_id !== job.predictionId) return;
      if (generation.poll_seq !== null && generation.poll_seq !== job.polls) return; // superseded: a twin of this job ran already
      if (Date.now() >= deadlineOf(generation, options.defaultDeadlineSeconds).getTime()) {
        await db.transaction().execute(async (trx) => {
          await queue.enqueueCancelPrediction(trx, { generationId: generation.id, predictionId: job.predictionId });
          await failGeneration(trx, generation.id, generation.attempt, 'deadline_exceeded', 'not finished before its deadline; the prediction was canceled');
        });
        return;
      }
      const prediction = await get(job, generation, signal);
      if (!prediction) return;
      const outcome = await options.updates.apply({ generationId: job.generationId, attempt: job.attempt, prediction });
      // createdAt is 0 for a prediction taken over from an earlier attempt: its age is unknown.
      if (outcome === 'done' && job.createdAt > 0) learn(generation.model, Date.now() - job.createdAt);
      if (outcome === 'waiting') {
        const next = { predictionId: job.predictionId, polls: job.polls + 1, createdAt: job.createdAt };
        await db.transaction().execute((trx) => schedule(trx, generation, next, job.polls));
      }
    },
  };
}
