// The end of every successful generation, whether its image came from the provider (finish
// phase) or from an identical generation (copy phase): render its variants, store them and the
// original, complete — and, in the same transaction, queue the copies of the generations that
// followed it and set going what waited for it (dependents.ts). Every write is fenced by the attempt that owns the work.
import type { Kysely } from 'kysely';
import { waitingFollowers } from '../../db/cache.ts';
import { chargedFor } from '../../db/credits.ts';
import { completeGeneration, transition } from '../../db/generations.ts';
import type { Database, Generation } from '../../db/schema.ts';
import type { JobMetrics } from '../metrics.ts';
import type { JobQueue } from '../queue.ts';
import { IMAGE_FILE_TYPES, variantSpecs } from '../render/presets.ts';
import { renderVariants, type RenderedImage, type RenderLimits } from '../render/render-variants.ts';
import type { AssetStorage } from '../storage/storage.ts';
import { advanceDependents } from './dependents.ts';
import { storedRequest } from './outcomes.ts';
import type { PhaseRun } from '../telemetry/phase-run.ts';

export interface DeliveryOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  storage: AssetStorage;
  render: RenderLimits;
  /** Where images stored, and each success with its charge, are reported. */
  metrics: JobMetrics;
}

/**
 * What came of it: succeeded, or stale when another attempt owns the generation by now.
 * `sources`: the provider's images, one per output, in order; each gets the variants.
 */
export type Deliver = (generation: Generation, sources: readonly Buffer[], data: Record<string, unknown>, run: PhaseRun) => Promise<'succeeded' | 'stale'>;

export function createDelivery(options: DeliveryOptions): Deliver {
  const { db, queue, storage } = options;
  return async (generation, sources, data, run) => {
    const { id, attempt } = generation;
    const fenced = (stage: string, eventData: Record<string, unknown>) => transition(db, { id, attempt, fromStates: ['running'], stage, data: eventData });
    const request = storedRequest.parse(generation.request);
    const specs = variantSpecs(request.platforms, request.customSizes, request.formats);
    const sourceBytes = sources.reduce((sum, source) => sum + source.length, 0);
    const outputs = sources.length > 1 ? { outputs: sources.length } : {};
    if (!(await fenced('rendering', { variants: specs.length * sources.length, sourceBytes, ...outputs }))) return 'stale';
    // One output after another: each render already uses the cores, and holds its decoded pixels meanwhile.
    const images: { outputIndex: number; image: RenderedImage }[] = [];
    for (const [outputIndex, source] of sources.entries()) {
      const rendered = await run.step('render', { 'kiln.variants': specs.length, 'kiln.source_bytes': source.length, 'kiln.output_index': outputIndex }, () => renderVariants(source, specs, request.crop, options.render));
      for (const image of [rendered.original, ...rendered.variants]) images.push({ outputIndex, image });
    }

    const assets = images.map(({ outputIndex, image }) => ({
      output_index: outputIndex,
      kind: image.platform === null ? ('original' as const) : ('variant' as const),
      platform: image.platform,
      format: image.format,
      width: image.width,
      height: image.height,
      bytes: image.bytes.length,
      content_hash: image.contentHash,
      storage_key: `${image.contentHash}.${IMAGE_FILE_TYPES[image.format].extension}`,
      content_type: IMAGE_FILE_TYPES[image.format].contentType,
    }));
    const bytes = assets.reduce((sum, asset) => sum + asset.bytes, 0);
    await run.step('store', { 'kiln.assets': assets.length, 'kiln.bytes': bytes }, () => Promise.all(images.map(({ image }, index) => storage.put(assets[index]!.storage_key, image.bytes))));
    options.metrics.imagesStored(assets);
    if (!(await fenced('stored', { assets: assets.length }))) return 'stale';
    let chargedMicroUsd = 0;
    const completed = await completeGeneration(db, {
      id,
      attempt,
      assets,
      data: { assets: assets.length, ...outputs, ...data },
      // Retention may have deleted an object this put found already stored: put it back.
      restore: async (keys) => {
        await Promise.all(keys.map((key) => storage.put(key, images[assets.findIndex((asset) => asset.storage_key === key)]!.image.bytes)));
      },
      then: async (trx, succeeded) => {
        const followers = await waitingFollowers(trx, id);
        await queue.enqueueCopies(trx, followers.map((generationId) => ({ generationId, copyOf: id })));
        await advanceDependents(trx, queue, succeeded, assets.filter((asset) => asset.kind === 'original'));
        // Only a metered tenant's generation is charged (its settlement is in this transaction).
        if (Number(succeeded.reserved) > 0) chargedMicroUsd = await chargedFor(trx, id);
      },
    });
    if (!completed) return 'stale';
    const servedFrom = completed.served_from_kind ?? 'own';
    const seconds = Math.max(0, ((completed.finished_at ?? new Date()).getTime() - completed.created_at.getTime()) / 1000);
    options.metrics.generationSucceeded({ tenantId: completed.tenant_id, servedFrom, seconds, chargedMicroUsd });
    return 'succeeded';
  };
}
