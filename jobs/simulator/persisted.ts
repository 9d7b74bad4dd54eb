import { z } from 'zod';
import type { FileRecord } from './file-store.ts';
import { OUTPUT_FORMATS } from './input-schema.ts';
import { findModel, modelRef } from './models.ts';
import { newLiveState, type PredictionRecord } from './prediction-record.ts';
import { PREDICTION_STATUSES } from './stats.ts';
import { WEBHOOK_EVENTS } from './webhooks.ts';

// The journal's lines: what the simulator keeps of predictions and uploaded files across a
// restart. Each line is checked on load; one that does not fit (a torn write, a model the
// simulator no longer knows) is skipped.

const ms = z.number().finite();

const imageOperationSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('img2img'), field: z.string(), url: z.string(), strength: z.number() }),
  z.object({ kind: z.literal('edit'), field: z.string(), url: z.string(), matchInput: z.boolean() }),
  z.object({ kind: z.literal('upscale'), field: z.string(), url: z.string(), scale: z.number() }),
  z.object({ kind: z.literal('crisp-upscale'), field: z.string(), url: z.string() }),
  z.object({ kind: z.literal('remove-background'), field: z.string(), url: z.string().nullable(), preserveAlpha: z.boolean() }),
  z.object({ kind: z.literal('compose'), field: z.string(), urls: z.array(z.string()).min(1).readonly(), matchInput: z.boolean() }),
]);

const paramsSchema = z.object({
  prompt: z.string(),
  seed: z.number().nullable(),
  width: z.int().positive(),
  height: z.int().positive(),
  outputFormat: z.enum(OUTPUT_FORMATS),
  outputQuality: z.number(),
  numOutputs: z.int().positive(),
  steps: z.int().positive(),
  // Journals written before image inputs existed have none.
  image: imageOperationSchema.nullable().default(null),
});

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const preparedSchema = z.object({ sha256, width: z.int().positive(), height: z.int().positive(), others: z.array(sha256).readonly().optional() });

const predictionEntry = z.object({
  type: z.literal('prediction'),
  seq: z.int().positive(),
  id: z.string().min(1),
  model: z.string(),
  version: z.string(),
  deployment: z.string().nullable(),
  webhook: z.string().nullable(),
  webhookEvents: z.array(z.enum(WEBHOOK_EVENTS)),
  seed: z.number(),
  imageCount: z.int().nonnegative(),
  steps: z.int().positive(),
  createdAt: ms,
  startsAt: ms,
  runMs: z.number().nonnegative(),
  outcome: z.discriminatedUnion('kind', [z.object({ kind: z.literal('succeed') }), z.object({ kind: z.literal('fail'), error: z.string() })]),
  deadlineAt: ms.nullable(),
  data: z.object({ input: z.record(z.string(), z.unknown()), params: paramsSchema }).nullable(),
  prepared: preparedSchema.nullable().default(null),
  status: z.enum(PREDICTION_STATUSES),
  startedAt: ms.nullable(),
  completedAt: ms.nullable(),
  error: z.string().nullable(),
});

const fileEntry = z.object({
  type: z.literal('file'),
  id: z.string().regex(/^[a-z0-9]+$/),
  name: z.string(),
  contentType: z.string(),
  size: z.int().nonnegative(),
  sha256: z.string(),
  md5: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  createdAt: ms,
  expiresAt: ms,
});

const journalEntry = z.discriminatedUnion('type', [
  predictionEntry,
  z.object({ type: z.literal('prediction-forgotten'), id: z.string() }),
  fileEntry,
  z.object({ type: z.literal('file-deleted'), id: z.string() }),
]);

export type JournalEntry = z.infer<typeof journalEntry>;
export type PredictionEntry = z.infer<typeof predictionEntry>;

export function parseJournalEntry(value: unknown): JournalEntry | undefined {
  const parsed = journalEntry.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

export function predictionEntryOf(record: PredictionRecord): PredictionEntry {
  return {
    type: 'prediction',
    seq: record.seq,
    id: record.id,
    model: modelRef(record.model.model),
    version: record.model.version,
    deployment: record.deployment,
    webhook: record.webhook,
    webhookEvents: [...record.webhookEvents],
    seed: record.seed,
    imageCount: record.imageCount,
    steps: record.steps,
    createdAt: record.createdAt,
    startsAt: record.startsAt,
    runMs: record.runMs,
    outcome: record.outcome,
    deadlineAt: record.deadlineAt,
    data: record.data,
    prepared: record.prepared,
    status: record.status,
    startedAt: record.startedAt,
    completedAt: record.completedAt,
    error: record.error,
  };
}

/** Undefined when the entry names a model or version the simulator does not know. */
export function predictionRecordOf(entry: PredictionEntry): PredictionRecord | undefined {
  const [owner = '', name = ''] = entry.model.split('/');
  const model = findModel(owner, name);
  if (model === undefined || !model.versions.includes(entry.version)) return undefined;
  const { type: _type, model: _model, version, webhookEvents, ...rest } = entry;
  return { ...rest, model: { model, version }, webhookEvents: new Set(webhookEvents), live: newLiveState() };
}

export function fileEntryOf(file: FileRecord): z.infer<typeof fileEntry> {
  return { type: 'file', ...file, metadata: { ...file.metadata } };
}
