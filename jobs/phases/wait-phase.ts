// The wait phase: while the provider works, no worker slot is held. Each poll is its own
// delayed job, scheduled by poll-schedule.ts and never past a limit (deadlines.ts), which
// the poll that falls on it enforces. Failures are decided by failure-table.ts.
import type { Kysely } from 'kysely';
import { advancePollSeq, countAwaitingProvider, findGenerationForWork } from '../../db/provider-work.ts';
import type { Database, Db, Generation } from '../../db/schema.ts';
import { SpanKind } from '@opentelemetry/api';
import type { ImageProvider } from '../provider/provider.ts';
import type { JobQueue, PollJob } from '../queue.ts';
import { LIMIT_FAILURES, capAtNearestLimit, missedLimit } from './deadlines.ts';
import { handleFailure, type JobContext } from './failures.ts';
import { failGeneration } from './outcomes.ts';
import { learnTypical, observedDurationMs, pollDelayMs, type PollSettings } from './poll-schedule.ts';
import type { PredictionUpdates } from './prediction-updates.ts';

export interface WaitPhaseOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  provider: ImageProvider;
  updates: PredictionUpdates;
  polls: PollSettings & {
    /** How long a count of predictions in flight is reused. */
    awaitingCountTtlMs: number;
  };
  /** The shared read budget (polls, cancels, lists) per minute. */
  readsPerMinute: number;
  /** Set when predictions report back by webhook: then a poll is only a backstop, this long after the expected finish. */
  webhookBackstopMs: () => number | undefined;
}

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
  schedule(trx: Db, generation: Generation, poll: PollPlan, after?: number): Promise<void>;
  run(job: PollJob, context: JobContext): Promise<void>;
}

export function createWaitPhase(options: WaitPhaseOptions): WaitPhase {
  const { db, queue, provider, polls: settings } = options;
  /** Per model: how long its predictions usually take, from create to end, as the provider timed those our polls saw succeed. */
  const typicalMs = new Map<string, number>();
  let awaiting = { count: 0, readAt: -Infinity };

  async function awaitingCount(): Promise<number> {
    if (performance.now() - awaiting.readAt > settings.awaitingCountTtlMs) awaiting = { count: await countAwaitingProvider(db), readAt: performance.now() };
    return awaiting.count;
  }

  /** `after`: the poll that schedules this one (undefined for an attempt's first). */
  async function schedule(trx: Db, generation: Generation, poll: PollPlan, after?: number) {
    const now = Date.now();
    const delayMs = pollDelayMs(
      {
        polls: poll.polls,
        createdAt: poll.createdAt,
        soon: poll.soon ?? false,
        typicalMs: typicalMs.get(generation.model),
        backstopMs: options.webhookBackstopMs(),
        awaiting: await awaitingCount(),
        readsPerMinute: options.readsPerMinute,
        now,
      },
      settings,
    );
    const { predictionId, polls, createdAt } = poll;
    if (!(await advancePollSeq(trx, { id: generation.id, attempt: generation.attempt, after, next: polls }))) return; // a twin run got there first
    await queue.enqueuePoll(trx, { generationId: generation.id, attempt: generation.attempt, predictionId, polls, createdAt }, capAtNearestLimit(delayMs, generation, now));
  }

  return {
    schedule,
    async run(job, context) {
      const { run } = context;
      const generation = await findGenerationForWork(db, job.generationId);
      if (generation) run.describe(generation);
      if (!generation || generation.state !== 'running' || generation.attempt !== job.attempt || generation.prediction_id !== job.predictionId) return run.outcome('stale');
      if (generation.poll_seq !== job.polls) return run.outcome('superseded'); // a twin of this job ran already
      const missed = missedLimit(generation);
      if (missed) {
        run.outcome(`past-${missed}`);
        const failure = LIMIT_FAILURES[missed];
        await db.transaction().execute(async (trx) => {
          await queue.enqueueCancelPrediction(trx, { generationId: generation.id, predictionId: job.predictionId });
          await failGeneration(trx, generation.id, generation.attempt, failure.code, failure.atProvider);
        });
        return;
      }
      let prediction;
      try {
        prediction = await run.step('provider get', { 'kiln.provider.operation': 'predictions.get', 'kiln.prediction_id': job.predictionId, 'kiln.poll': job.polls }, () =>
          provider.getPrediction(job.predictionId, context.signal), SpanKind.CLIENT);
      } catch (error) {
        // Asked again, the same poll comes later (the limits bound the wait).
        const pollAgain = { timing: settings, schedule: (inMs: number) => queue.enqueuePoll(db, { ...job }, capAtNearestLimit(inMs, generation)) };
        return handleFailure('poll', error, context, { db, generation, pollAgain });
      }
      const outcome = await options.updates.apply({ generationId: job.generationId, attempt: job.attempt, prediction });
      run.outcome(outcome === 'done' ? prediction.status : outcome);
      // On the provider's clock, so this holds for a prediction taken over from an earlier attempt too.
      const observedMs = outcome === 'done' ? observedDurationMs(prediction) : undefined;
      if (observedMs !== undefined) typicalMs.set(generation.model, learnTypical(typicalMs.get(generation.model), observedMs, settings));
      if (outcome === 'waiting') {
        const next = { predictionId: job.predictionId, polls: job.polls + 1, createdAt: job.createdAt };
        await db.transaction().execute((trx) => schedule(trx, generation, next, job.polls));
      }
    },
  };
}
