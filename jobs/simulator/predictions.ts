import { parseDirectives, DIRECTIVE_FAILURE_ERROR, NSFW_ERROR, RANDOM_FAILURE_ERROR } from './directives.ts';
import type { FaultState } from './faults.ts';
import { newPredictionId } from './ids.ts';
import type { ImageSpec } from './images.ts';
import { modelRef, reportedVersion, type ModelVersion } from './models.ts';
import { progressLine } from './progress.ts';
import { isFinal, type PredictionStatus, type StatsCounters } from './stats.ts';
import type { TimerHandle, TimerRegistry } from './timers.ts';
import type { GenerationParams } from './validation.ts';
import type { WebhookEvent, WebhookSender } from './webhooks.ts';

// Prediction store and lifecycle: starting → processing → succeeded | failed | canceled | aborted.
// Every timer of a prediction is kept on its record and cleared when it ends.

export interface PredictionJson {
  id: string;
  model: string;
  version: string;
  input: Record<string, unknown>;
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

export interface CreatePredictionRequest {
  /** The model and the version of it that runs. */
  readonly model: ModelVersion;
  /** "owner/name" when created through a deployment. */
  readonly deployment: string | null;
  readonly input: Record<string, unknown>;
  readonly params: GenerationParams;
  readonly webhook: string | null;
  readonly webhookEvents: ReadonlySet<WebhookEvent>;
  /** From the Cancel-After header: not started by then → aborted; running → canceled. */
  readonly cancelAfterMs: number | null;
}

type Outcome = { kind: 'succeed' } | { kind: 'fail'; error: string };

export interface PredictionRecord {
  readonly seq: number;
  readonly id: string;
  readonly request: CreatePredictionRequest;
  readonly seed: number;
  readonly runMs: number;
  readonly outcome: Outcome;
  readonly createdAt: number;
  status: PredictionStatus;
  logs: string;
  error: string | null;
  stepsLogged: number;
  startedAt: number | null;
  completedAt: number | null;
  readonly timers: Set<TimerHandle>;
  readonly finalListeners: Set<() => void>;
  lastProgressWebhookAt: number;
  progressWebhookScheduled: boolean;
}

export interface PredictionEngineOptions {
  readonly timers: TimerRegistry;
  readonly random: () => number;
  readonly queueDelayMs: number;
  readonly outputRetentionMs: number;
  readonly predictionRetentionMs: number;
  readonly faults: FaultState;
  readonly stats: StatsCounters;
  readonly webhooks: WebhookSender;
  /** Base URL for the absolute URLs in prediction JSON; known only once the server listens. */
  readonly baseUrl: () => string;
}

/** Replicate sends `output`/`logs` webhooks at most this often. */
const PROGRESS_WEBHOOK_INTERVAL_MS = 500;
const MIN_PROGRESS_TICK_MS = 20;

export type OutputFileLookup = { kind: 'file'; spec: ImageSpec } | { kind: 'removed' } | { kind: 'missing' };

export class PredictionEngine {
  readonly #options: PredictionEngineOptions;
  readonly #records = new Map<string, PredictionRecord>();
  #nextSeq = 1;

  constructor(options: PredictionEngineOptions) {
    this.#options = options;
  }

  /** Drops finished predictions (their files already 404) once past predictionRetentionMs. */
  startPruning(): void {
    const every = Math.min(60_000, Math.max(50, this.#options.predictionRetentionMs / 4));
    this.#options.timers.setInterval(() => this.#prune(), every, { unref: true });
  }

  create(request: CreatePredictionRequest): PredictionRecord {
    const { random, faults, queueDelayMs } = this.#options;
    const directives = parseDirectives(request.params.prompt);
    // Draw in a fixed order so an injected `random` gives reproducible runs.
    const latency = faults.latencyMs;
    const drawnRunMs = latency.min + random() * (latency.max - latency.min);
    const randomFailure = random() < faults.failureRate;
    const seed = request.params.seed ?? Math.floor(random() * 2 ** 31);

    let outcome: Outcome = { kind: 'succeed' };
    if (directives.nsfw) outcome = { kind: 'fail', error: NSFW_ERROR };
    else if (directives.fail) outcome = { kind: 'fail', error: DIRECTIVE_FAILURE_ERROR };
    else if (randomFailure) outcome = { kind: 'fail', error: RANDOM_FAILURE_ERROR };

    const record: PredictionRecord = {
      seq: this.#nextSeq++,
      id: newPredictionId(),
      request,
      seed,
      runMs: Math.round(directives.slowMs ?? drawnRunMs),
      outcome,
      createdAt: Date.now(),
      status: 'starting',
      logs: '',
      error: null,
      stepsLogged: 0,
      startedAt: null,
      completedAt: null,
      timers: new Set(),
      finalListeners: new Set(),
      lastProgressWebhookAt: 0,
      progressWebhookScheduled: false,
    };
    this.#records.set(record.id, record);
    this.#schedule(record, queueDelayMs, () => this.#start(record));
    if (request.cancelAfterMs !== null) this.#schedule(record, request.cancelAfterMs, () => this.#deadline(record));
    return record;
  }

  get(id: string): PredictionRecord | undefined {
    return this.#records.get(id);
  }

  /** Cancels a running or queued prediction; final ones are left unchanged. */
  cancel(id: string): PredictionRecord | undefined {
    const record = this.#records.get(id);
    if (record !== undefined && !isFinal(record.status)) this.#finish(record, 'canceled', null);
    return record;
  }

  /**
   * Newest first. `beforeSeq` is the list cursor: only records created before it. `createdAfter`
   * (inclusive) and `createdBefore` (exclusive) bound creation times, in ms since the epoch.
   */
  list(beforeSeq: number | null, pageSize: number, range: { createdAfter: number | null; createdBefore: number | null }): { page: PredictionRecord[]; nextSeq: number | null } {
    const all = [...this.#records.values()];
    const page: PredictionRecord[] = [];
    const inRange = (record: PredictionRecord): boolean =>
      (range.createdAfter === null || record.createdAt >= range.createdAfter) && (range.createdBefore === null || record.createdAt < range.createdBefore);
    for (let i = all.length - 1; i >= 0 && page.length <= pageSize; i--) {
      const record = all[i];
      if (record !== undefined && (beforeSeq === null || record.seq < beforeSeq) && inRange(record)) page.push(record);
    }
    const hasMore = page.length > pageSize;
    if (hasMore) page.pop();
    return { page, nextSeq: hasMore ? (page[page.length - 1]?.seq ?? null) : null };
  }

  /** Resolves when the prediction is final, after timeoutMs, or when signal aborts (client gone). */
  waitUntilFinal(record: PredictionRecord, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (isFinal(record.status) || signal?.aborted === true) {
        resolve();
        return;
      }
      const done = (): void => {
        timer.cancel();
        record.finalListeners.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.#options.timers.setTimeout(done, timeoutMs);
      record.finalListeners.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Calls back once when the prediction ends (or the simulator stops); returns an unsubscribe. */
  onFinal(record: PredictionRecord, callback: () => void): () => void {
    if (isFinal(record.status)) {
      callback();
      return () => {};
    }
    const listener = (): void => {
      record.finalListeners.delete(listener);
      callback();
    };
    record.finalListeners.add(listener);
    return () => record.finalListeners.delete(listener);
  }

  liveCounts(): { starting: number; processing: number } {
    let starting = 0;
    let processing = 0;
    for (const record of this.#records.values()) {
      if (record.status === 'starting') starting++;
      else if (record.status === 'processing') processing++;
    }
    return { starting, processing };
  }

  isDataRemoved(record: PredictionRecord): boolean {
    return record.completedAt !== null && Date.now() - record.completedAt >= this.#options.outputRetentionMs;
  }

  /** Resolves GET /files/{id}/{name}. */
  outputFile(id: string, name: string): OutputFileLookup {
    const record = this.#records.get(id);
    const match = /^out-(\d+)\.(webp|jpg|png)$/.exec(name);
    if (record === undefined || match === null || record.status !== 'succeeded') return { kind: 'missing' };
    const { params } = record.request;
    const index = Number(match[1]);
    if (index >= params.numOutputs || match[2] !== params.outputFormat) return { kind: 'missing' };
    if (this.isDataRemoved(record)) return { kind: 'removed' };
    return {
      kind: 'file',
      spec: {
        prompt: params.prompt,
        seed: record.seed,
        index,
        width: params.width,
        height: params.height,
        format: params.outputFormat,
        quality: params.outputQuality,
      },
    };
  }

  toJson(record: PredictionRecord): PredictionJson {
    const base = this.#options.baseUrl();
    const { request } = record;
    const { model, params } = request;
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    const metrics: PredictionJson['metrics'] = {};
    if (record.completedAt !== null) {
      if (record.startedAt !== null) metrics.predict_time = (record.completedAt - record.startedAt) / 1000;
      metrics.total_time = (record.completedAt - record.createdAt) / 1000;
      if (record.status === 'succeeded') metrics.image_count = params.numOutputs;
    }
    let output: PredictionJson['output'] = null;
    if (record.status === 'succeeded') {
      const urls = Array.from({ length: params.numOutputs }, (_, i) => `${base}/files/${record.id}/out-${i}.${params.outputFormat}`);
      output = model.model.singleOutput ? (urls[0] ?? null) : urls;
    }
    return {
      id: record.id,
      model: modelRef(model.model),
      version: reportedVersion(model),
      input: record.request.input,
      logs: record.logs,
      output,
      data_removed: this.isDataRemoved(record),
      error: record.error,
      status: record.status,
      source: 'api',
      created_at: new Date(record.createdAt).toISOString(),
      started_at: iso(record.startedAt),
      completed_at: iso(record.completedAt),
      ...(request.cancelAfterMs === null ? {} : { deadline: new Date(record.createdAt + request.cancelAfterMs).toISOString() }),
      ...(request.deployment === null ? {} : { deployment: request.deployment }),
      urls: {
        get: `${base}/v1/predictions/${record.id}`,
        cancel: `${base}/v1/predictions/${record.id}/cancel`,
        stream: `${base}/stream/${record.id}`,
        web: `${base}/p/${record.id}`,
      },
      metrics,
    };
  }

  /** Ends every waiting request and listener; timers are cleared by the registry. */
  stop(): void {
    for (const record of this.#records.values()) {
      for (const listener of [...record.finalListeners]) listener();
      record.timers.clear();
    }
  }

  clearAll(): void {
    this.#records.clear();
  }

  #schedule(record: PredictionRecord, ms: number, callback: () => void): void {
    const handle = this.#options.timers.setTimeout(() => {
      record.timers.delete(handle);
      callback();
    }, ms);
    record.timers.add(handle);
  }

  #start(record: PredictionRecord): void {
    if (record.status !== 'starting') return;
    const { params } = record.request;
    record.status = 'processing';
    record.startedAt = Date.now();
    record.logs = `Using seed: ${record.seed}\nUsing dimensions ${params.width}x${params.height}\n${progressLine(0, params.steps, 0)}\n`;
    this.#sendWebhook(record, 'start');
    const tickMs = Math.max(MIN_PROGRESS_TICK_MS, record.runMs / params.steps);
    const tick = (): void => {
      if (record.status !== 'processing') return;
      const elapsed = Date.now() - (record.startedAt ?? Date.now());
      // The last step is logged by #complete, so a canceled run never shows 100 %.
      const step = Math.min(params.steps - 1, Math.floor((elapsed / Math.max(1, record.runMs)) * params.steps));
      if (step > record.stepsLogged) {
        this.#logStepsUpTo(record, step);
        this.#progressWebhook(record);
      }
      this.#schedule(record, tickMs, tick);
    };
    this.#schedule(record, tickMs, tick);
    this.#schedule(record, record.runMs, () => this.#complete(record));
  }

  #logStepsUpTo(record: PredictionRecord, step: number): void {
    const { steps } = record.request.params;
    const elapsedSeconds = (Date.now() - (record.startedAt ?? Date.now())) / 1000;
    for (let s = record.stepsLogged + 1; s <= step; s++) {
      // Spread the elapsed time over the steps so the it/s figure stays plausible.
      record.logs += `${progressLine(s, steps, (elapsedSeconds * s) / step)}\n`;
    }
    record.stepsLogged = Math.max(record.stepsLogged, step);
  }

  #complete(record: PredictionRecord): void {
    if (record.status !== 'processing') return;
    if (record.outcome.kind === 'fail') {
      this.#finish(record, 'failed', record.outcome.error);
      return;
    }
    this.#logStepsUpTo(record, record.request.params.steps);
    this.#finish(record, 'succeeded', null);
  }

  /** Cancel-After deadline reached. */
  #deadline(record: PredictionRecord): void {
    if (record.status === 'starting') this.#finish(record, 'aborted', null);
    else if (record.status === 'processing') this.#finish(record, 'canceled', null);
  }

  #finish(record: PredictionRecord, status: PredictionStatus, error: string | null): void {
    for (const handle of record.timers) handle.cancel();
    record.timers.clear();
    record.status = status;
    record.error = error;
    record.completedAt = Date.now();
    this.#options.stats.countFinal(status);
    for (const listener of [...record.finalListeners]) listener();
    if (status === 'succeeded') this.#sendWebhook(record, 'output');
    this.#sendWebhook(record, 'completed');
  }

  #sendWebhook(record: PredictionRecord, event: WebhookEvent): void {
    const { webhook, webhookEvents } = record.request;
    if (webhook === null || !webhookEvents.has(event)) return;
    // Only the final webhook is retried, like Replicate.
    this.#options.webhooks.send(webhook, JSON.stringify(this.toJson(record)), { retry: event === 'completed' });
  }

  /** `logs` webhooks while processing, at most one per 500 ms, the latest state trailing. */
  #progressWebhook(record: PredictionRecord): void {
    const { webhook, webhookEvents } = record.request;
    if (webhook === null || !webhookEvents.has('logs') || record.progressWebhookScheduled) return;
    const wait = record.lastProgressWebhookAt + PROGRESS_WEBHOOK_INTERVAL_MS - Date.now();
    const send = (): void => {
      record.progressWebhookScheduled = false;
      if (record.status !== 'processing') return;
      record.lastProgressWebhookAt = Date.now();
      this.#sendWebhook(record, 'logs');
    };
    if (wait <= 0) {
      send();
      return;
    }
    record.progressWebhookScheduled = true;
    this.#schedule(record, wait, send);
  }

  #prune(): void {
    const cutoff = Date.now() - this.#options.predictionRetentionMs;
    for (const [id, record] of this.#records) {
      if (record.completedAt !== null && record.completedAt < cutoff) this.#records.delete(id);
    }
  }
}

