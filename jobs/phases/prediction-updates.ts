// What news of a prediction means for its generation, wherever the news comes from (a poll, or
// a webhook received by an API process). News is acted on once: the first to record a status
// wins (see recordProviderStatus), and nothing moves a generation that is no longer running.
import type { Kysely } from 'kysely';
import { transition } from '../../db/generations.ts';
import { findGenerationForWork, recordProviderStatus } from '../../db/provider-work.ts';
import type { Database, Generation } from '../../db/schema.ts';
import { isFinalPredictionStatus, type Prediction } from '../provider/provider.ts';
import type { JobQueue } from '../queue.ts';
import { LIMIT_FAILURES, missedLimit } from './deadlines.ts';
import { failGeneration, type FailureCode } from './outcomes.ts';

/**
 * stale: not ours (any more); early: the prediction's id is not stored yet (its create has not
 * returned), so the news cannot be placed — worth hearing again; waiting: the provider is
 * still at it; done: nothing left to wait for.
 */
export type UpdateOutcome = 'stale' | 'early' | 'waiting' | 'done';

export interface PredictionUpdates {
  /** `attempt`: only for that attempt (a poll); undefined: whichever attempt holds the prediction (a webhook). */
  apply(update: { generationId: string; attempt?: number; prediction: Prediction }): Promise<UpdateOutcome>;
}

export function createPredictionUpdates(options: { db: Kysely<Database>; queue: JobQueue }): PredictionUpdates {
  const { db, queue } = options;

  return {
    async apply({ generationId, attempt, prediction }) {
      const generation = await findGenerationForWork(db, generationId);
      if (generation?.state === 'running' && generation.prediction_id === null) return 'early';
      if (!generation || generation.state !== 'running' || generation.prediction_id !== prediction.id) return 'stale';
      if (attempt !== undefined && generation.attempt !== attempt) return 'stale';
      const final = isFinalPredictionStatus(prediction.status);
      return db.transaction().execute(async (trx) => {
        const news = await recordProviderStatus(trx, {
          id: generation.id,
          attempt: generation.attempt,
          predictionId: prediction.id,
          status: prediction.status,
          progress: prediction.progress,
          final,
          predictSeconds: prediction.predictSeconds,
        });
        if (!news) return final ? 'stale' : 'waiting';
        const fenced = { id: generation.id, attempt: generation.attempt };
        if (!final) {
          if (prediction.status === 'processing') {
            await transition(trx, { ...fenced, fromStates: ['running'], stage: 'provider.processing', data: { progress: prediction.progress } });
          }
          return 'waiting';
        }
        switch (prediction.status) {
          case 'succeeded': {
            const [outputUrl] = prediction.output;
            if (!outputUrl) await failGeneration(trx, generation.id, generation.attempt, 'unusable_output', 'the provider reported success but returned no image');
            else {
              const several = prediction.output.length > 1 ? { outputUrls: prediction.output } : {};
              await queue.enqueueFinish(trx, { generationId: generation.id, attempt: generation.attempt, predictionId: prediction.id, outputUrl, ...several });
            }
            return 'done';
          }
          case 'failed':
            await failGeneration(trx, generation.id, generation.attempt, 'provider_failed', prediction.error ?? 'the model failed without giving a reason');
            return 'done';
          case 'aborted': {
            // Ended by its Cancel-After before it started; that was its run limit unless the deadline has passed too.
            const failure = LIMIT_FAILURES[missedLimit(generation) ?? 'run-limit'];
            await failGeneration(trx, generation.id, generation.attempt, failure.code, failure.neverStarted);
            return 'done';
          }
          default: // canceled: by its Cancel-After deadline, or at the provider by someone else
            await failGeneration(trx, generation.id, generation.attempt, ...canceledReason(generation));
            return 'done';
        }
      });
    },
  };

  function canceledReason(generation: Generation): [FailureCode, string] {
    const missed = missedLimit(generation);
    return missed ? [LIMIT_FAILURES[missed].code, LIMIT_FAILURES[missed].atProvider] : ['provider_canceled', 'the provider canceled the prediction'];
  }
}
