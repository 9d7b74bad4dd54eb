// The copy phase: a generation served from an identical one (a cache hit, or a follower whose
// leader succeeded) claims its attempt, reads that one's original images (one per output) from
// storage and is delivered from them (deliver.ts) with its own variants. No provider call. It runs on the finish
// queue, so copies and provider outputs share the renderers; failures follow the finish row of
// failure-table.ts. A copy whose original is no longer stored (pruned, or lost with its store)
// is not a failure of the request: it goes back to the queue as its own work, paying its full
// price — or fails `insufficient_credit` if its tenant's balance cannot cover that.
import type { Kysely } from 'kysely';
import { buffer } from 'node:stream/consumers';
import { findOriginalAssets, serveOnItsOwn } from '../../db/cache.ts';
import { isInsufficientCredit, pricing } from '../../db/credits.ts';
import { startAttempt } from '../../db/generations.ts';
import type { Database, Generation } from '../../db/schema.ts';
import { isModelId, MODELS } from '../provider/models.ts';
import type { CopyJob } from '../queue.ts';
import type { PhaseRun } from '../telemetry/phase-run.ts';
import type { AssetStorage, StoredObject } from '../storage/storage.ts';
import type { Deliver } from './deliver.ts';
import { handleFailure, type JobContext } from './failures.ts';
import { failGeneration, storedRequest } from './outcomes.ts';

const INSUFFICIENT_FOR_OWN_WORK =
  'the image it was to be served from is no longer stored, and the credit left does not cover a generation of its own; add credit and submit it again';

export interface CopyPhaseOptions {
  db: Kysely<Database>;
  storage: AssetStorage;
  deliver: Deliver;
  /** Names this worker in the events it writes. */
  workerId: string;
}

export function createCopyPhase(options: CopyPhaseOptions) {
  const { db } = options;

  async function runOnItsOwn(generation: Generation, run: PhaseRun): Promise<void> {
    // Its full reservation, as the API reserves it for a model's own work (the cache price share plays no part).
    const { outputs } = storedRequest.parse(generation.request);
    const reserve = isModelId(generation.model) ? pricing(MODELS[generation.model].price, 0, outputs).reserve : 0;
    try {
      run.outcome((await serveOnItsOwn(db, { id: generation.id, attempt: generation.attempt, reserve })) ? 'requeued-own-work' : 'stale');
    } catch (error) {
      if (!isInsufficientCredit(error)) throw error;
      await failGeneration(db, generation.id, generation.attempt, 'insufficient_credit', INSUFFICIENT_FOR_OWN_WORK);
      run.outcome('failed');
    }
  }

  return {
    async run(job: CopyJob, context: JobContext): Promise<void> {
      // A new attempt each run, so a copy whose worker died is fenced off like any other.
      const { run } = context;
      const generation = await startAttempt(db, job.generationId, { copyOf: job.copyOf, retry: context.retryCount, worker: options.workerId });
      if (!generation) return run.outcome('stale'); // canceled, or past its deadline, while it waited
      run.describe(generation);
      try {
        // Every output's original, in order: a copy has the outputs its leader has.
        const originals = await findOriginalAssets(db, job.copyOf);
        const opened = await Promise.all(originals.map((original) => options.storage.open(original.storage_key)));
        const stored = opened.filter((object): object is StoredObject => object !== undefined);
        if (stored.length === 0 || stored.length < originals.length) return await runOnItsOwn(generation, run);
        const sources = await run.step('storage read', { 'kiln.copy_of': job.copyOf }, () => Promise.all(stored.map((object) => buffer(object.stream()))));
        run.outcome(await options.deliver(generation, sources, { copyOf: job.copyOf }, run));
      } catch (error) {
        await handleFailure('finish', error, context, { db, generation });
      }
    },
  };
}
