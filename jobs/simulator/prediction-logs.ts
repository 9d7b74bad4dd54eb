import type { PredictionRecord } from './prediction-record.ts';
import type { ModelFamily } from './models.ts';
import { progressLine } from './progress.ts';

const TAKES_SEED: ReadonlySet<ModelFamily> = new Set(['flux', 'sdxl', 'kontext']);

// A prediction's logs are a function of its timestamps: the header lines once it starts, then one
// tqdm line per denoising step as its run time passes. So every reader (GET, webhooks, the SSE
// stream, a restarted simulator) sees the same logs without any of them being stored.

/** The last progress step shown at `now` (-1: not started, so no logs at all). */
export function stepsShown(record: PredictionRecord, now: number): number {
  if (record.startedAt === null) return -1;
  if (record.status === 'succeeded') return record.steps;
  const end = record.completedAt ?? now;
  const step = Math.floor(((end - record.startedAt) / Math.max(1, record.runMs)) * record.steps);
  // The last step is shown only on success, so a canceled or failed run never reads 100 %.
  return Math.max(0, Math.min(record.steps - 1, step));
}

/** Log lines from progress step `from` (0: with the header lines) up to `to`, inclusive. */
export function logLines(record: PredictionRecord, from: number, to: number): string[] {
  if (record.data === null || to < 0) return [];
  const { params } = record.data;
  const lines: string[] = [];
  if (from <= 0) {
    // Models without a seed input log none; an image operation's size follows its input.
    if (TAKES_SEED.has(record.model.model.family)) lines.push(`Using seed: ${record.seed}`);
    if (params.image === null) lines.push(`Using dimensions ${params.width}x${params.height}`);
  }
  const secondsPerStep = record.runMs / record.steps / 1000;
  for (let step = Math.max(0, from); step <= to; step++) lines.push(progressLine(step, record.steps, step * secondsPerStep));
  return lines;
}

export function logsText(record: PredictionRecord, now: number): string {
  const lines = logLines(record, 0, stepsShown(record, now));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
