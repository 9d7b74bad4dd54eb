// The finish phase: the prediction succeeded; download its output (from the provider's hosts
// only, size-capped), render the variants (CPU-bound: this queue's concurrency follows the
// cores), store them and complete. Every write is fenced by the attempt that owns the work.
import type { Kysely } from 'kysely';
import { completeGeneration, transition } from '../../db/generations.ts';
import { findGenerationForWork } from '../../db/provider-work.ts';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../logger.ts';
import { downloadOutput, type DownloadLimits } from '../provider/download-output.ts';
import type { ImageProvider } from '../provider/provider.ts';
import type { FinishJob } from '../queue.ts';
import { IMAGE_FILE_TYPES, variantSpecs } from '../render/presets.ts';
import { renderVariants, type RenderLimits } from '../render/render-variants.ts';
import type { AssetStorage } from '../storage/storage.ts';
import { handleFailure, type JobContext } from './failures.ts';
import { storedRequest } from './outcomes.ts';

export interface FinishPhaseOptions {
  db: Kysely<Database>;
  provider: ImageProvider;
  storage: AssetStorage;
  logger: Logger;
  download: DownloadLimits;
  render: RenderLimits;
}

export function createFinishPhase(options: FinishPhaseOptions) {
  const { db } = options;
  return {
    async run(job: FinishJob, context: JobContext): Promise<void> {
      const { signal } = context;
      const generation = await findGenerationForWork(db, job.generationId);
      if (!generation || generation.state !== 'running' || generation.attempt !== job.attempt) return;
      const { id, attempt } = generation;
      const fenced = (stage: string, data: Record<string, unknown>) => transition(db, { id, attempt, fromStates: ['running'], stage, data });
      try {
        if (!(await fenced('downloading', { predictionId: job.predictionId }))) return;
        const source = await downloadOutput(options.provider, job.outputUrl, options.download, signal);

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
          storage_key: `${image.contentHash}.${IMAGE_FILE_TYPES[image.format].extension}`,
          content_type: IMAGE_FILE_TYPES[image.format].contentType,
        }));
        await Promise.all(images.map((image, index) => options.storage.put(assets[index]!.storage_key, image.bytes)));
        if (!(await fenced('stored', { assets: assets.length }))) return;
        await completeGeneration(db, { id, attempt, assets, data: { assets: assets.length, predictionId: job.predictionId } });
      } catch (error) {
        // A retry downloads again: the provider keeps the output for an hour.
        await handleFailure('finish', error, context, { db, generation, logger: options.logger });
      }
    },
  };
}
