import { parseDirectives, DIRECTIVE_FAILURE_ERROR, NSFW_ERROR, RANDOM_FAILURE_ERROR } from './directives.ts';
import type { FaultState } from './faults.ts';
import { newPredictionId } from './ids.ts';
import type { OutputSpec } from './image-outputs.ts';
import type { Preparation } from './input-images.ts';
import type { ModelSpec, ModelVersion } from './models.ts';
import { outputNames, toPredictionJson, type PredictionJson } from './prediction-json.ts';
import { logLines, stepsShown } from './prediction-logs.ts';
import { newLiveState, type Outcome, type PredictionRecord } from './prediction-record.ts';
import { isFinal, type PredictionStatus, type StatsCounters } from './stats.ts';
import type { TimerRegistry } from './timers.ts';
import type { GenerationParams } from './validation.ts';
import type { WebhookEvent, WebhookSender } from './webhooks.ts';

// Prediction store and lifecycle: starting → processing → succeeded | failed | canceled | aborted.
// A prediction's course is fixed by the times drawn at creation; #advance applies whatever of it
// is due and sets one timer for the next step, so a late timer (or a restart) never changes
// what happened when.

export type { PredictionJson } from './prediction-json.ts';

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
  /** Told of every change worth keeping across a restart (the data folder's journal). */
  readonly journal?: PredictionJournal;
  /** Fetches and checks the input image of a model that takes one, when its prediction starts. */
  readonly images: ImagePreparer;
}

export interface ImagePreparer {
  prepare(operation: NonNullable<GenerationParams['image']>, params: GenerationParams): Promise<Preparation>;
}

export interface PredictionJournal {
  saved(record: PredictionRecord): void;
  forgotten(id: string): void;
}

/** Replicate sends `output`/`logs` webhooks at most this often. */
const PROGRESS_WEBHOOK_INTERVAL_MS = 500;
const MIN_PROGRESS_TICK_MS = 20;

export type OutputFileLookup = { kind: 'file'; spec: OutputSpec } | { kind: 'removed' } | { kind: 'missing' };

export interface PredictionListener {
  /** New log lines, as they are written. */
  onLogs?(lines: readonly string[]): void;
  /** Once, when the prediction ends (or the simulator stops). */
  onFinal?(): void;
}

export class PredictionEngine {
  readonly #options: PredictionEngineOptions;
  readonly #records = new Map<string, PredictionRecord>();
  #nextSeq = 1;

  constructor(options: PredictionEngineOptions) {
    this.#options = options;
  }

  /** Removes expired data and forgets predictions past predictionRetentionMs, now and then. */
  startPruning(): void {
    const { outputRetentionMs, predictionRetentionMs } = this.#options;
    const every = Math.min(60_000, Math.max(50, Math.min(outputRetentionMs, predictionRetentionMs) / 4));
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

    const createdAt = Date.now();
    const record: PredictionRecord = {
      seq: this.#nextSeq++,
      id: newPredictionId(),
      model: request.model,
      deployment: request.deployment,
      webhook: request.webhook,
      webhookEvents: request.webhookEvents,
      seed,
      imageCount: request.params.numOutputs,
      steps: request.params.steps,
      createdAt,
      startsAt: createdAt + queueDelayMs,
      runMs: Math.round(directives.slowMs ?? drawnRunMs),
      outcome,
      deadlineAt: request.cancelAfterMs === null ? null : createdAt + request.cancelAfterMs,
      data: { input: request.input, params: { ...request.params, seed } },
      prepared: null,
      status: 'starting',
      startedAt: null,
      completedAt: null,
      error: null,
      live: newLiveState(),
    };
    this.#records.set(record.id, record);
    this.#save(record);
    this.#advance(record);
    return record;
  }

  /**
   * Takes back predictions kept from before a restart (oldest first). They go on with resumeAll,
   * once the server listens: what fell due while the simulator was down happens then, at the
   * times it was due.
   */
  restore(records: Iterable<PredictionRecord>): void {
    for (const record of records) {
      this.#records.set(record.id, record);
      this.#nextSeq = Math.max(this.#nextSeq, record.seq + 1);
    }
  }

  resumeAll(): void {
    for (const record of this.#records.values()) {
      if (isFinal(record.status)) continue;
      if (record.status === 'processing') {
        // Lines written before the restart had no listener to hear them; go on from now.
        record.live.stepsTold = stepsShown(record, Date.now());
        this.#startTicks(record);
      }
      this.#advance(record);
    }
  }

  /** Every prediction, oldest first (for a snapshot of the journal). */
  all(): IterableIterator<PredictionRecord> {
    return this.#records.values();
  }

  get(id: string): PredictionRecord | undefined {
    return this.#records.get(id);
  }

  /** Cancels a running or queued prediction; final ones are left unchanged. */
  cancel(id: string): PredictionRecord | undefined {
    const record = this.#records.get(id);
    if (record !== undefined && !isFinal(record.status)) this.#finish(record, 'canceled', null, Date.now());
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
        unsubscribe();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.#options.timers.setTimeout(done, timeoutMs);
      const unsubscribe = this.subscribe(record, { onFinal: done });
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Follows a live prediction (a final one calls onFinal at once); returns an unsubscribe. */
  subscribe(record: PredictionRecord, listener: PredictionListener): () => void {
    const { onLogs, onFinal } = listener;
    if (isFinal(record.status)) {
      onFinal?.();
      return () => {};
    }
    const { finalListeners, logListeners } = record.live;
    const final = (): void => {
      unsubscribe();
      onFinal?.();
    };
    const logs = onLogs === undefined ? undefined : (lines: readonly string[]): void => onLogs(lines);
    const unsubscribe = (): void => {
      finalListeners.delete(final);
      if (logs !== undefined) logListeners.delete(logs);
    };
    finalListeners.add(final);
    if (logs !== undefined) logListeners.add(logs);
    return unsubscribe;
  }

  /**
   * The log lines written so far, as log listeners have heard them: a subscriber that starts with
   * these and then follows onLogs sees every line once.
   */
  logLinesSoFar(record: PredictionRecord): string[] {
    if (this.isDataRemoved(record)) return [];
    const upTo = isFinal(record.status) ? stepsShown(record, Date.now()) : record.live.stepsTold;
    return logLines(record, 0, upTo);
  }

  /** Predictions of the model the simulator still knows of (GET /v1/models' run_count). */
  runCount(model: ModelSpec): number {
    let count = 0;
    for (const record of this.#records.values()) if (record.model.model === model) count++;
    return count;
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

  /** Input, logs and output files are removed outputRetentionMs after completion, as on Replicate. */
  isDataRemoved(record: PredictionRecord): boolean {
    return record.data === null || (record.completedAt !== null && Date.now() - record.completedAt >= this.#options.outputRetentionMs);
  }

  /** Resolves GET /files/{id}/{name}. */
  outputFile(id: string, name: string): OutputFileLookup {
    const record = this.#records.get(id);
    if (record === undefined || record.status !== 'succeeded') return { kind: 'missing' };
    if (this.isDataRemoved(record) || record.data === null) return { kind: 'removed' };
    const index = outputNames(record).indexOf(name);
    if (index < 0) return { kind: 'missing' };
    const { params } = record.data;
    const common = { prompt: params.prompt, seed: record.seed, index, format: params.outputFormat, quality: params.outputQuality };
    if (params.image === null) return { kind: 'file', spec: { kind: 'generated', image: { ...common, width: params.width, height: params.height } } };
    if (record.prepared === null) return { kind: 'missing' };
    const { sha256, width, height, others } = record.prepared;
    return { kind: 'file', spec: { kind: 'derived', operation: params.image, input: sha256, ...(others === undefined ? {} : { others }), width, height, ...common } };
  }

  /** The input images that predictions whose data is kept still render from. */
  referencedInputs(): Set<string> {
    const referenced = new Set<string>();
    for (const record of this.#records.values()) {
      if (record.prepared === null || record.data === null || this.isDataRemoved(record)) continue;
      for (const sha256 of [record.prepared.sha256, ...(record.prepared.others ?? [])]) referenced.add(sha256);
    }
    return referenced;
  }

  toJson(record: PredictionRecord): PredictionJson {
    return toPredictionJson(record, { baseUrl: this.#options.baseUrl(), now: Date.now(), dataRemoved: this.isDataRemoved(record) });
  }

  /** Ends every waiting request and listener; timers are cleared by the registry. */
  stop(): void {
    for (const record of this.#records.values()) {
      for (const listener of [...record.live.finalListeners]) listener();
      record.live.timers.clear();
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Applies every step of the prediction's course that is due, then waits for the next. */
  #advance(record: PredictionRecord): void {
    if (isFinal(record.status)) return;
    const now = Date.now();
    const { deadlineAt } = record;
    if (record.status === 'starting') {
      if (deadlineAt !== null && deadlineAt <= record.startsAt) {
        // The deadline comes before it would start: it never does.
        if (deadlineAt <= now) this.#finish(record, 'aborted', null, deadlineAt);
        else this.#wakeAt(record, deadlineAt);
        return;
      }
      if (record.startsAt > now) {
        this.#wakeAt(record, record.startsAt);
        return;
      }
      this.#start(record, record.startsAt);
    }
    const waitsForImage = this.#needsImage(record);
    if (waitsForImage && !record.live.preparing) this.#prepare(record);
    const completesAt = (record.startedAt ?? now) + record.runMs;
    const deadlineFirst = deadlineAt !== null && deadlineAt < completesAt;
    const endsAt = deadlineFirst ? deadlineAt : completesAt;
    if (endsAt > now) this.#wakeAt(record, endsAt);
    else if (deadlineFirst) this.#finish(record, 'canceled', null, endsAt);
    // Its input image is not in yet: #prepare advances it again when it is.
    else if (waitsForImage) return;
    else if (record.outcome.kind === 'fail') this.#finish(record, 'failed', record.outcome.error, endsAt);
    // A run never ends before its input image was in.
    else this.#finish(record, 'succeeded', null, Math.max(endsAt, record.live.preparedAt ?? endsAt));
  }

  #needsImage(record: PredictionRecord): boolean {
    return record.prepared === null && record.data !== null && record.data.params.image !== null;
  }

  /** Fetches and checks the input image, as the model does when it starts; a failure ends the run. */
  #prepare(record: PredictionRecord): void {
    const params = record.data?.params;
    const operation = params?.image;
    if (params === undefined || operation === undefined || operation === null) return;
    record.live.preparing = true;
    void this.#options.images
      .prepare(operation, params)
      .catch((error: unknown): Preparation => ({ ok: false, error: `Could not use input.${operation.field}: ${error instanceof Error ? error.message : String(error)}` }))
      .then((result) => {
        record.live.preparing = false;
        if (isFinal(record.status) || this.#options.timers.stopped) return;
        const now = Date.now();
        record.live.preparedAt = now;
        if (!result.ok) return this.#finish(record, 'failed', result.error, now);
        record.prepared = result.prepared;
        this.#save(record);
        this.#advance(record);
      });
  }

  #wakeAt(record: PredictionRecord, at: number): void {
    this.#schedule(record, at - Date.now(), () => this.#advance(record));
  }

  #schedule(record: PredictionRecord, ms: number, callback: () => void): void {
    const { timers } = record.live;
    const handle = this.#options.timers.setTimeout(() => {
      timers.delete(handle);
      callback();
    }, ms);
    timers.add(handle);
  }

  #start(record: PredictionRecord, at: number): void {
    record.status = 'processing';
    record.startedAt = at;
    this.#save(record);
    this.#tellLogs(record, Date.now());
    this.#sendWebhook(record, 'start');
    this.#startTicks(record);
  }

  /** Progress lines for log listeners and `logs` webhooks, as the steps pass. */
  #startTicks(record: PredictionRecord): void {
    const tickMs = Math.max(MIN_PROGRESS_TICK_MS, record.runMs / record.steps);
    const tick = (): void => {
      if (record.status !== 'processing') return;
      if (this.#tellLogs(record, Date.now())) this.#progressWebhook(record);
      this.#schedule(record, tickMs, tick);
    };
    this.#schedule(record, tickMs, tick);
  }

  /** Tells log listeners the lines written since they last heard; returns whether there were any. */
  #tellLogs(record: PredictionRecord, now: number): boolean {
    const { live } = record;
    const shown = stepsShown(record, now);
    if (shown <= live.stepsTold) return false;
    const lines = logLines(record, live.stepsTold + 1, shown);
    live.stepsTold = shown;
    for (const listener of [...live.logListeners]) listener(lines);
    return true;
  }

  #finish(record: PredictionRecord, status: PredictionStatus, error: string | null, at: number): void {
    for (const handle of record.live.timers) handle.cancel();
    record.live.timers.clear();
    record.status = status;
    record.error = error;
    record.completedAt = at;
    this.#save(record);
    this.#options.stats.countFinal(status);
    this.#tellLogs(record, at);
    for (const listener of [...record.live.finalListeners]) listener();
    record.live.logListeners.clear();
    if (status === 'succeeded') this.#sendWebhook(record, 'output');
    this.#sendWebhook(record, 'completed');
  }

  #sendWebhook(record: PredictionRecord, event: WebhookEvent): void {
    const { webhook, webhookEvents } = record;
    if (webhook === null || !webhookEvents.has(event)) return;
    // Only the final webhook is retried, like Replicate.
    this.#options.webhooks.send(webhook, JSON.stringify(this.toJson(record)), { retry: event === 'completed' });
  }

  /** `logs` webhooks while processing, at most one per 500 ms, the latest state trailing. */
  #progressWebhook(record: PredictionRecord): void {
    const { webhook, webhookEvents, live } = record;
    if (webhook === null || !webhookEvents.has('logs') || live.progressWebhookScheduled) return;
    const wait = live.lastProgressWebhookAt + PROGRESS_WEBHOOK_INTERVAL_MS - Date.now();
    const send = (): void => {
      live.progressWebhookScheduled = false;
      if (record.status !== 'processing') return;
      live.lastProgressWebhookAt = Date.now();
      this.#sendWebhook(record, 'logs');
    };
    if (wait <= 0) {
      send();
      return;
    }
    live.progressWebhookScheduled = true;
    this.#schedule(record, wait, send);
  }

  #prune(): void {
    const now = Date.now();
    const forgetBefore = now - this.#options.predictionRetentionMs;
    for (const [id, record] of this.#records) {
      if (record.completedAt === null) continue;
      if (record.completedAt < forgetBefore) {
        this.#records.delete(id);
        this.#options.journal?.forgotten(id);
      } else if (record.data !== null && this.isDataRemoved(record)) {
        record.data = null;
        this.#save(record);
      }
    }
  }

  #save(record: PredictionRecord): void {
    this.#options.journal?.saved(record);
  }
}
