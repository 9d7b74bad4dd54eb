// The assemble phase: a composite whose parts have all succeeded (dependents.ts queued it)
// claims its attempt and is delivered from their images (deliver.ts) with its own variants —
// several outputs, one from each part; or, for the product-photo optimiser, the last step's
// cut-out, framed for a catalogue. No provider call: its parts made (and paid for) those. It runs
// on the finish queue beside the renders; failures follow the finish row of failure-table.ts.
import type { Kysely } from 'kysely';
import { buffer } from 'node:stream/consumers';
import { listParts } from '../../db/chains.ts';
import { findOriginalAssets } from '../../db/cache.ts';
import { startAttempt } from '../../db/generations.ts';
import type { Asset, Database } from '../../db/schema.ts';
import { frameForCatalogue } from '../render/catalogue.ts';
import type { RenderLimits } from '../render/render-variants.ts';
import type { AssembleJob } from '../queue.ts';
import type { AssetStorage } from '../storage/storage.ts';
import type { Deliver } from './deliver.ts';
import { handleFailure, type JobContext } from './failures.ts';
import { failGeneration, storedRequest } from './outcomes.ts';

export interface AssemblePhaseOptions {
  db: Kysely<Database>;
  storage: AssetStorage;
  deliver: Deliver;
  render: RenderLimits;
  /** The optimiser's margin around a product, as a share of its longer edge. */
  catalogueMarginShare: number;
  /** Names this worker in the events it writes. */
  workerId: string;
}

export function createAssemblePhase(options: AssemblePhaseOptions) {
  const { db, storage } = options;

  /** Each part's first original, in the parts' order; undefined when one is no longer stored. */
  async function readOriginals(parts: readonly string[]): Promise<Buffer[] | undefined> {
    const originals = await Promise.all(parts.map(async (id) => (await findOriginalAssets(db, id))[0]));
    const opened = await Promise.all(originals.map((original?: Asset) => (original ? storage.open(original.storage_key) : undefined)));
    if (opened.some((object) => object === undefined)) return undefined;
    return Promise.all(opened.map((object) => buffer(object!.stream())));
  }

  return {
    async run(job: AssembleJob, context: JobContext): Promise<void> {
      const { run } = context;
      const generation = await startAttempt(db, job.generationId, { assemble: true, retry: context.retryCount, worker: options.workerId });
      if (!generation) return run.outcome('stale'); // canceled, or past its deadline, meanwhile
      run.describe(generation);
      try {
        const request = storedRequest.parse(generation.request);
        const parts = (await listParts(db, generation.id)).filter((part) => part.state === 'succeeded');
        // The optimiser delivers its last step's result; several outputs, every part's.
        const used = request.optimize ? parts.slice(-1) : parts;
        const images = await run.step('storage read', { 'kiln.parts': used.length }, () => readOriginals(used.map((part) => part.id)));
        if (!images || images.length === 0) {
          await failGeneration(db, generation.id, generation.attempt, 'unusable_output', 'an image its steps made is no longer stored; submit it again');
          return run.outcome('failed');
        }
        const partIds = parts.map((part) => part.id);
        if (!request.optimize) return run.outcome(await options.deliver(generation, images, { parts: partIds }, run));
        const framing = { background: request.optimize.background === 'transparent' ? ('transparent' as const) : ('white' as const), marginShare: options.catalogueMarginShare };
        const framed = await run.step('frame', { 'kiln.background': framing.background }, () => frameForCatalogue(images[0]!, framing, options.render));
        const bytesBefore = request.input?.bytes ?? null;
        run.outcome(await options.deliver(generation, [framed], { parts: partIds, ...(bytesBefore === null ? {} : { bytesBefore }) }, run));
      } catch (error) {
        await handleFailure('finish', error, context, { db, generation });
      }
    },
  };
}
