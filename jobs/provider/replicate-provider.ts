// Replicate through its official client. Each call gets a fresh client around a one-shot fetch
// (see one-shot-fetch.ts), so our policies own retries; the client still owns the wire format.
import { createHash } from 'node:crypto';
import Replicate from 'replicate';
import { PermanentProviderError, TransientProviderError } from './errors.ts';
import { oneShotFetch, type Fetch } from './one-shot-fetch.ts';
import type { ProviderPolicies } from './policies.ts';
import { PREDICTION_STATUSES, type CallKind, type CreatePredictionRequest, type FileUpload, type ImageProvider, type ListedPrediction, type Prediction, type PredictionStatus, type ProviderFile } from './provider.ts';

export interface ReplicateProviderOptions {
  apiToken: string;
  /** e.g. https://api.replicate.com/v1, or the simulator's http://127.0.0.1:PORT/v1. */
  baseUrl: string;
  policies: ProviderPolicies;
  /** Hosts output files may come from besides Replicate's own delivery hosts. */
  extraOutputOrigins?: readonly string[];
  fetch?: Fetch;
}

const REPLICATE_OUTPUT_HOST = /(^|\.)replicate\.delivery$/;

export function createReplicateProvider(options: ReplicateProviderOptions): ImageProvider {
  const client = (extraHeaders?: Record<string, string>) =>
    new Replicate({
      auth: options.apiToken,
      baseUrl: options.baseUrl,
      useFileOutput: false,
      // Inputs name their images by URL (uploaded once: jobs/phases/input-files.ts), so the client
      // never has a file to encode. 'upload' is the strategy that can never fall back to a data
      // URI ('data-uri' in 1.4 sends the client, API token included, as the input); and
      // createPrediction refuses binary input values, so it is never used either.
      fileEncodingStrategy: 'upload',
      fetch: oneShotFetch({ ...(extraHeaders ? { extraHeaders } : {}), ...(options.fetch ? { baseFetch: options.fetch } : {}) }),
    });
  const extraOrigins = new Set(options.extraOutputOrigins ?? []);

  const call = <T>(kind: CallKind, operation: (attemptSignal: AbortSignal) => Promise<T>, signal?: AbortSignal, slotBooked = false) =>
    options.policies.execute(kind, async (attemptSignal) => {
      try {
        return await operation(attemptSignal);
      } catch (error) {
        throw classify(error);
      }
    }, signal, { slotBooked });

  return {
    name: 'replicate',
    // The token's hash, not the token: the scope is stored beside each uploaded file.
    fileScope: `${options.baseUrl}#${createHash('sha256').update(options.apiToken).digest('hex').slice(0, 16)}`,
    uploadFile(file: FileUpload, signal?: AbortSignal) {
      // An upload is not a create: Replicate budgets it with every other call. Retrying one that
      // may have gone through leaves at worst a second copy, which expires with the first.
      return call('read', async (attemptSignal) => toProviderFile(await client().files.create(new File([file.bytes], file.filename, { type: file.contentType }), file.metadata, { signal: attemptSignal })), signal);
    },
    createPrediction(request: CreatePredictionRequest, signal?: AbortSignal) {
      const binary = Object.entries(request.input).find(([, value]) => value instanceof Blob || Buffer.isBuffer(value) || value instanceof Uint8Array);
      if (binary) return Promise.reject(new PermanentProviderError(`input ${binary[0]} is binary; upload it first and pass its URL`));
      const headers = request.cancelAfterSeconds ? { 'Cancel-After': `${Math.ceil(request.cancelAfterSeconds)}s` } : undefined;
      return call('create', async (attemptSignal) => {
        const prediction = await client(headers).predictions.create({
          ...request.route,
          input: request.input,
          ...(request.webhook ? { webhook: request.webhook, webhook_events_filter: ['start', 'completed'] } : {}),
          signal: attemptSignal,
        });
        return toPrediction(prediction);
      }, signal, request.slotBooked === true);
    },
    getPrediction(id: string, signal?: AbortSignal) {
      return call('read', async (attemptSignal) => toPrediction(await client().predictions.get(id, { signal: attemptSignal })), signal);
    },
    cancelPrediction(id: string, signal?: AbortSignal) {
      return call('read', async (attemptSignal) => toPrediction(await client().predictions.cancel(id, { signal: attemptSignal })), signal);
    },
    webhookSecret(signal?: AbortSignal) {
      return call('read', async (attemptSignal) => {
        const { key } = await client().webhooks.default.secret.get({ signal: attemptSignal });
        if (typeof key !== 'string' || !key.startsWith('whsec_')) throw new PermanentProviderError('the provider gave no usable webhook secret');
        return key;
      }, signal);
    },
    listPredictions(page: string | undefined, signal?: AbortSignal) {
      // The next page's URL comes from the provider's answer; follow it only to the provider itself.
      if (page !== undefined && URL.parse(page)?.origin !== new URL(options.baseUrl).origin) {
        return Promise.reject(new PermanentProviderError('the provider pointed the next page somewhere else', { publicReason: 'unexpected answer from the provider' }));
      }
      return call('read', async (attemptSignal) => {
        const replicate = client();
        const body: unknown = page === undefined ? await replicate.predictions.list({ signal: attemptSignal }) : await (await replicate.request(page, { method: 'GET', signal: attemptSignal })).json();
        const { results, next } = (body ?? {}) as { results?: unknown; next?: unknown };
        return {
          predictions: (Array.isArray(results) ? results : []).map(toListedPrediction),
          next: typeof next === 'string' && next ? next : undefined,
        };
      }, signal);
    },
    isAllowedOutputUrl(url: URL) {
      if (extraOrigins.has(url.origin)) return true;
      return url.protocol === 'https:' && REPLICATE_OUTPUT_HOST.test(url.hostname);
    },
  };
}

function classify(error: unknown): unknown {
  if (error instanceof TransientProviderError || error instanceof PermanentProviderError) return error;
  if (isApiError(error)) {
    const status = error.response.status;
    // 429 and 5xx never reach here (the one-shot fetch throws them first); other 4xx are final.
    const reason = `the provider rejected the request (${status}): ${detail(error.message)}`;
    return new PermanentProviderError(reason, { status, publicReason: reason, cause: error });
  }
  return error;
}

/** The client's ApiError (not exported at runtime): an Error carrying the HTTP response. */
function isApiError(error: unknown): error is Error & { response: Response } {
  return error instanceof Error && 'response' in error && error.response instanceof Response;
}

/** Pulls Replicate's human-readable `detail` out of the client's error message. */
function detail(message: string): string {
  const json = /(\{.*\})\.?$/s.exec(message)?.[1];
  if (json) {
    try {
      const body = JSON.parse(json) as { detail?: unknown; title?: unknown };
      if (typeof body.detail === 'string') return body.detail;
      if (typeof body.title === 'string') return body.title;
    } catch {
      // not JSON after all: fall through
    }
  }
  return message.slice(0, 300);
}

export function toPrediction(raw: unknown): Prediction {
  const value = (raw ?? {}) as Record<string, unknown>;
  const status = PREDICTION_STATUSES.includes(value.status as PredictionStatus) ? (value.status as PredictionStatus) : undefined;
  if (typeof value.id !== 'string' || !status) {
    throw new TransientProviderError('provider answered with an unreadable prediction', { publicReason: 'the provider gave an unreadable answer', ambiguous: true });
  }
  const output = Array.isArray(value.output) ? value.output.filter((item): item is string => typeof item === 'string') : typeof value.output === 'string' ? [value.output] : [];
  const logs = typeof value.logs === 'string' ? value.logs : '';
  return {
    id: value.id,
    status,
    output,
    error: typeof value.error === 'string' ? value.error : value.error ? JSON.stringify(value.error) : null,
    logs,
    progress: progressFromLogs(logs),
    predictSeconds: predictSecondsOf(value.metrics),
    totalSeconds: totalSecondsOf(value),
  };
}

function toProviderFile(raw: unknown): ProviderFile {
  const value = (raw ?? {}) as Record<string, unknown>;
  const urls = (value.urls ?? {}) as Record<string, unknown>;
  const expires = typeof value.expires_at === 'string' ? new Date(value.expires_at) : null;
  if (typeof value.id !== 'string' || typeof urls.get !== 'string') {
    throw new TransientProviderError('provider answered an upload with an unreadable file', { publicReason: 'the provider gave an unreadable answer', ambiguous: true });
  }
  return { id: value.id, url: urls.get, expiresAt: expires && !Number.isNaN(expires.getTime()) ? expires : null };
}

function predictSecondsOf(metrics: unknown): number | null {
  const seconds = typeof metrics === 'object' && metrics !== null ? (metrics as Record<string, unknown>).predict_time : undefined;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/**
 * From created_at to completed_at: both on the provider's clock, so no skew against ours, and
 * microseconds are cut to the millisecond. metrics.total_time where the timestamps do not say.
 */
function totalSecondsOf(value: Record<string, unknown>): number | null {
  const at = (field: unknown) => (typeof field === 'string' ? new Date(field).getTime() : Number.NaN);
  const seconds = (at(value.completed_at) - at(value.created_at)) / 1000;
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const metrics = typeof value.metrics === 'object' && value.metrics !== null ? (value.metrics as Record<string, unknown>) : {};
  const total = metrics.total_time;
  return typeof total === 'number' && Number.isFinite(total) && total >= 0 ? total : null;
}

function toListedPrediction(raw: unknown): ListedPrediction {
  const value = (raw ?? {}) as Record<string, unknown>;
  const created = typeof value.created_at === 'string' ? new Date(value.created_at) : null;
  const input = value.input !== null && typeof value.input === 'object' && !Array.isArray(value.input) ? (value.input as Record<string, unknown>) : {};
  return {
    ...toPrediction(raw),
    createdAt: created && !Number.isNaN(created.getTime()) ? created : null,
    input,
    model: typeof value.model === 'string' ? value.model : null,
    version: typeof value.version === 'string' ? value.version : null,
  };
}

/** Diffusion models log tqdm bars ("  40%|████      | 2/5 [...]"); the last one tells progress. */
function progressFromLogs(logs: string): number | null {
  const matches = [...logs.matchAll(/(\d{1,3})%\|/g)];
  const last = matches.at(-1)?.[1];
  return last === undefined ? null : Math.min(100, Number(last)) / 100;
}
