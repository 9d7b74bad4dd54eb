// The copy phase: a generation served from an identical one (a cache hit, or a follower whose
// leader succeeded) claims its attempt, reads that one's original image from storage and is
// delivered from it (deliver.ts) with its own variants. No provider call. It runs on the finish
// queue, so copies and provider outputs share the renderers; failures follow the finish row of
// failure-table.ts.
import type { Kysely } from 'kysely';
import { buffer } from 'node:stream/consumers';
import { findOriginalAsset } from '../../db/cache.ts';
import { startAttempt } from '../../db/generations.ts';
import type { Database } from '../../db/schema.ts';
import type { CopyJob } from '../queue.ts';
import { UnusableImageError } from '../render/render-variants.ts';
import type { AssetStorage } from '../storage/storage.ts';
import type { Deliver } from './deliver.ts';
import { handleFailure, type JobContext } from './failures.ts';

export interface CopyPhaseOptions {
  db: Kysely<Database>;
  storage: AssetStorage;
  deliver: Deliver;
  /** Names this worker in the events it writes. */
  workerId: string;
}

export function createCopyPhase(options: CopyPhaseOptions) {
  const { db } = options;
  return {
    async run(job: CopyJob, context: JobContext): Promise<void> {
      // A new attempt each run, so a copy whose worker died is fenced off like any other.
      const { run } = context;
      const generation = await startAttempt(db, job.generationId, { copyOf: job.copyOf, retry: context.retryCount, worker: options.workerId });
      if (!generation) return run.outcome('stale'); // canceled, or past its deadline, while it waited
      run.describe(generation);
      try {
        const original = await findOriginalAsset(db, job.copyOf);
        const stored = original && (await options.storage.open(original.storage_key));
        // A permanent failure (the finish row of the failure table fails it as unusable_output).
        if (!stored) throw new UnusableImageError(`the image of generation ${job.copyOf}, which it is served from, is no longer stored`);
        const source = await run.step('storage read', { 'kiln.copy_of': job.copyOf }, async () => buffer(stored.stream()));
        run.outcome(await options.deliver(generation, source, { copyOf: job.copyOf }, run));
      } catch (error) {
        await handleFailure('finish', error, context, { db, generation });
      }
    },
  };
}
