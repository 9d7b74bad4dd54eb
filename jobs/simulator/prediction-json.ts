import { modelRef, reportedVersion } from './models.ts';
import { logsText } from './prediction-logs.ts';
import type { PredictionRecord } from './prediction-record.ts';
import type { PredictionStatus } from './stats.ts';

// The prediction object of Replicate's API (GET /v1/predictions/{id}, webhooks, lists).

export interface PredictionJson {
  id: string;
  model: string;
  /** The version id that ran, or "hidden" for official models. */
  version: string;
  /** {} once the data is removed. */
  input: Record<string, unknown>;
  /** "" once the data is removed. */
  logs: string;
  output: string[] | string | null;
  data_removed: boolean;
  error: string | null;
  status: PredictionStatus;
  source: 'api';
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  /** When Cancel-After ends it if it has not completed: created_at plus the header's duration. */
  deadline?: string;
  /** "owner/name" of the deployment that created it, if one did. */
  deployment?: string;
  urls: { get: string; cancel: string; stream: string; web: string };
  metrics: { predict_time?: number; total_time?: number; image_count?: number };
}

/** The output file names of a succeeded prediction: out-0.webp, out-1.webp … */
export function outputNames(record: PredictionRecord): string[] {
  const params = record.data?.params;
  if (params === undefined) return [];
  return Array.from({ length: params.numOutputs }, (_, i) => `out-${i}.${params.outputFormat}`);
}

export function toPredictionJson(record: PredictionRecord, context: { baseUrl: string; now: number; dataRemoved: boolean }): PredictionJson {
  const { baseUrl, now, dataRemoved } = context;
  const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
  const metrics: PredictionJson['metrics'] = {};
  if (record.completedAt !== null) {
    if (record.startedAt !== null) metrics.predict_time = (record.completedAt - record.startedAt) / 1000;
    metrics.total_time = (record.completedAt - record.createdAt) / 1000;
    if (record.status === 'succeeded') metrics.image_count = record.imageCount;
  }
  let output: PredictionJson['output'] = null;
  if (record.status === 'succeeded' && !dataRemoved) {
    const urls = outputNames(record).map((name) => `${baseUrl}/files/${record.id}/${name}`);
    output = record.model.model.singleOutput ? (urls[0] ?? null) : urls;
  }
  return {
    id: record.id,
    model: modelRef(record.model.model),
    version: reportedVersion(record.model),
    input: dataRemoved || record.data === null ? {} : record.data.input,
    logs: dataRemoved ? '' : logsText(record, now),
    output,
    data_removed: dataRemoved,
    error: record.error,
    status: record.status,
    source: 'api',
    created_at: new Date(record.createdAt).toISOString(),
    started_at: iso(record.startedAt),
    completed_at: iso(record.completedAt),
    ...(record.deadlineAt === null ? {} : { deadline: new Date(record.deadlineAt).toISOString() }),
    ...(record.deployment === null ? {} : { deployment: record.deployment }),
    urls: {
      get: `${baseUrl}/v1/predictions/${record.id}`,
      cancel: `${baseUrl}/v1/predictions/${record.id}/cancel`,
      stream: `${baseUrl}/stream/${record.id}`,
      web: `${baseUrl}/p/${record.id}`,
    },
    metrics,
  };
}
