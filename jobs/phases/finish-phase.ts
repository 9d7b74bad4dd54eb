// The finish phase: the prediction succeeded; download its outputs (from the provider's hosts
// only, size-capped, one after another) and deliver them (deliver.ts: render the variants, store, complete). CPU-bound:
// this queue's concurrency follows the cores.
import type { Kysely } from 'kysely';
import { transition } from '../../db/generations.ts';
import { findGenerationForWork } from '../../db/provider-work.ts';
import type { Database } from '../../db/schema.ts';
import { SpanKind } from '@opentelemetry/api';
import { downloadOutput, type DownloadLimits } from '../provider/download-output.ts';
import type { ImageProvider } from '../provider/provider.ts';
import type { FinishJob } from '../queue.ts';
import type { Deliver } from './deliver.ts';
import { handleFailure, type JobContext } from './failures.ts';

export interface FinishPhaseOptions {
  db: Kysely<Database>;
  provider: ImageProvider;
  deliver: Deliver;
  download: DownloadLimits;
}

export function createFinishPhase(options: FinishPhaseOptions) {
  const { db } = options;
  return {
    async run(job: FinishJob, context: JobContext): Promise<void> {
      const { signal, run } = context;
      const generation = await findGenerationForWork(db, job.generationId);
      if (generation) run.describe(generation);
      if (!generation || generation.state !== 'running' || generation.attempt !== job.attempt) return run.outcome('stale');
      const { id, attempt } = generation;
      try {
        if (!(await transition(db, { id, attempt, fromStates: ['running'], stage: 'downloading', data: { predictionId: job.predictionId } }))) return run.outcome('stale');
        const urls = job.outputUrls ?? [job.outputUrl];
        const sources: Buffer[] = [];
        for (const url of urls) {
          sources.push(await run.step('provider download', { 'kiln.provider.operation': 'output.download' }, () => downloadOutput(options.provider, url, options.download, signal), SpanKind.CLIENT));
        }
        run.outcome(await options.deliver(generation, sources, { predictionId: job.predictionId }, run));
      } catch (error) {
        // A retry downloads again: the provider keeps the output for an hour.
        await handleFailure('finish', error, context, { db, generation });
      }
    },
  };
}
