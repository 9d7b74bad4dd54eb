// The use cases behind the API, free of tRPC: validated input in, plain data or DomainError out.
// It implements GenerationService (services.ts); its answers are the types of api-types.ts.
import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import {
  cancelBatchGenerations,
  cancelGeneration,
  countBatchStates,
  findBatch,
  findBatchByIdempotencyKey,
  findByIdempotencyKey,
  findGeneration,
  insertBatch,
  insertGenerations,
  listAssets,
  listEvents,
  listBatchGenerations,
  listGenerations,
  releaseExpiredIdempotencyKey,
  type NewGenerationInput,
} from '../db/generations.ts';
import { findImageSources } from '../db/image-sources.ts';
import type { Asset, Database, Generation, GenerationEvent, GenerationRequestJson, ImageSource, InputImageJson, ServedFromKind } from '../db/schema.ts';
import { canonicalJson, mayReuse, providerFingerprint } from '../jobs/provider/cache-key.ts';
import {
  MODEL_IDS,
  MODELS,
  OPERATIONS,
  mayUse,
  modelDefinition,
  modelFor,
  modelsFor,
  modelsForTenantTier,
  offersAspectRatio,
  serves,
  takesReferences,
  type ModelId,
  type ModelPrice,
  type ModelRequest,
  type ModelTier,
  type Operation,
} from '../jobs/provider/models.ts';
import { priorityHeadStartSeconds } from '../jobs/dispatch/select.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { notifyDispatcher } from '../db/dispatch.ts';
import { findCreditBalance, isInsufficientCredit, pricing, toUsd } from '../db/credits.ts';
import { createIdFactory } from '../db/ids.ts';
import { estimateQueue, type EstimateSettings, type QueueEstimate as DbQueueEstimate } from '../db/queue-estimates.ts';
import type {
  BatchAccepted,
  BatchCanceled,
  BatchInput,
  BatchItemInput,
  BatchStatusView,
  CancelAnswer,
  GenerateAnswer,
  GenerateInput,
  GenerationDeduplicated,
  GenerationPage,
  GenerationStatusView,
  GenerationSummary,
  ListInput,
  ModelView,
  Operation as ApiOperation,
  QueueEstimate,
  StageEvent,
} from './api-types.ts';
import { assertMayReadBatch, assertMayReadGeneration, type Caller } from './caller.ts';
import { assetView as toAssetView } from './realtime/event-view.ts';
import { badRequest, conflict, forbidden, notFound, paymentRequired } from './errors.ts';
import { createGroupCommit } from './group-commit.ts';
import type { Equal, Expect } from './same-type.ts';
import type { RequestLimiter } from './request-limiter.ts';
import type { CallOrigin, GenerationService } from './services.ts';

export interface GenerationServiceOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  /** Base URL under which /assets/<key> is served (known once the server listens). */
  publicUrl: () => string;
  /** Deadline of a generation that does not ask for one. */
  defaultDeadlineSeconds: number | undefined;
  /** How concurrent `generate` calls share transactions (see group-commit.ts). */
  groupCommit: { maxItems: number; maxConcurrentFlushes: number };
  /** What the queue estimate needs to follow the dispatcher's order (its budget and weights). */
  estimates: EstimateSettings;
  /** A priority point is worth this many seconds of waiting in the dispatch order. */
  priorityAgingSeconds: number;
  /** Admits requests by the tenant's (and its subjects') rate limits before anything is written. */
  requestLimiter: RequestLimiter;
  /** How long an idempotency key is remembered. */
  idempotencyKeySeconds: number;
  /** A generation served from an identical one is charged this share of what its model reserves. */
  cachePriceShare: number;
  /** Told of the generations written, once committed, and how each is served (own work, cache, joined). */
  onQueued?: (rows: readonly QueuedRow[]) => void;
}

export interface QueuedRow {
  tenantId: string;
  servedFrom: 'own' | ServedFromKind;
}

/** A tenant's tier picks the model when the request names neither model nor tier. */
const TIER_FOR_TENANT: Record<string, ModelTier> = { free: 'fast', standard: 'fast', pro: 'quality' };

/** The estimate goes out as db/queue-estimates.ts computes it: the API's type must not drift from it. */
type QueueEstimateMatchesTheQuery = Expect<Equal<DbQueueEstimate, QueueEstimate>>;
/** The model table's prices and tiers go out as they are (api-types.ts restates them for the client's declarations). */
type ModelPriceMatchesTheTable = Expect<Equal<ModelPrice, ModelView['price']>>;
type ModelTierMatchesTheTable = Expect<Equal<ModelTier, ModelView['tier']>>;
type OperationsMatchTheTable = Expect<Equal<Operation, ApiOperation>>;

const NO_SOURCES: ReadonlyMap<string, ImageSource> = new Map();

/** A stored row's operation; rows from before image operations name none. */
const operationOf = (stored: string | undefined): Operation => (OPERATIONS as readonly string[]).includes(stored ?? '') ? (stored as Operation) : 'text-to-image';

/** The reference images a request names (text-to-image and edit take them), in its order. */
const referencesOf = (item: BatchItemInput): readonly string[] => (item.operation === 'text-to-image' || item.operation === 'edit' ? (item.references ?? []) : []);

/** A source as a stored request's input image. */
const inputImage = (source: ImageSource): InputImageJson => ({ kind: 'source', sourceId: source.id, contentHash: source.content_hash, storageKey: source.storage_key, format: source.format });

/**
 * A request with references needs a model that takes them: one named that takes none (or fewer)
 * is BAD_REQUEST on `model`, naming those that do; so is a request no model of its operation can serve.
 */
function checkReferences(model: ModelId, item: BatchItemInput, field: string): void {
  const count = referencesOf(item).length;
  if (takesReferences(model, count)) return;
  const able = modelsFor(item.operation).filter((id) => takesReferences(id, count));
  const instead = able.length > 0 ? `with reference images use: ${able.join(', ')}` : `no model for ${item.operation} takes them`;
  throw badRequest(`model ${model} takes no reference images; ${instead}`, { [`${field}${item.model ? 'model' : 'references'}`]: ['the model takes no reference images'] });
}

/** The first reference of the items that is not among the tenant's sources, with its field. */
function missingReference(items: readonly BatchItemInput[], found: ReadonlyMap<string, ImageSource>, field: (index: number) => string): { id: string; path: string } | undefined {
  for (const [index, item] of items.entries()) {
    const at = referencesOf(item).findIndex((id) => !found.has(id));
    if (at >= 0) return { id: referencesOf(item)[at] ?? '', path: `${field(index)}references.${at}` };
  }
  return undefined;
}

export function createGenerationService({ db, queue, publicUrl, defaultDeadlineSeconds, groupCommit, estimates, priorityAgingSeconds, requestLimiter, idempotencyKeySeconds, cachePriceShare, onQueued }: GenerationServiceOptions): GenerationService {
  const newId = createIdFactory();

  /**
   * The model a request asks for (by name, by `tier`, or its tenant's tier's choice) among those
   * that serve its operation, if the tenant's tier may use it. An upscale picks a model that
   * offers its scale.
   */
  const chooseModel = (caller: Caller, item: BatchItemInput, field: string): ModelId => {
    const { operation } = item;
    const scale = item.operation === 'upscale' ? item.scale : null;
    const offersScale = (id: ModelId) => scale === null || modelDefinition(id).scales.includes(scale);
    const references = referencesOf(item).length;
    if (item.model && !serves(item.model, operation)) {
      const models = modelsFor(operation).join(', ');
      throw badRequest(`model ${item.model} does not do ${operation}; for ${operation} use: ${models}`, { [`${field}model`]: [`does not do ${operation}`] });
    }
    const model = item.model ?? modelFor(operation, item.tier ?? TIER_FOR_TENANT[caller.tenantTier] ?? 'fast', (id) => offersScale(id) && takesReferences(id, references));
    checkReferences(model, item, field);
    if (!mayUse(model, caller.tenantTier)) {
      const allowed = modelsForTenantTier(caller.tenantTier, operation).filter((id) => takesReferences(id, references));
      const what = operation === 'text-to-image' && references === 0 ? '' : ` for ${operation}${references > 0 ? ' with reference images' : ''}`;
      const may = allowed.length > 0 ? `it may use${what}: ${allowed.join(', ')}` : `it may use no model${what}`;
      // The field that chose it: the model or tier named, the references (few models take them), else the operation (its tenant's tier's pick).
      const path = `${field}${item.tier && !item.model ? 'tier' : item.model ? 'model' : references > 0 ? 'references' : operation === 'text-to-image' ? 'model' : 'operation'}`;
      throw forbidden(`model ${model} is not available on the ${caller.tenantTier} tier; ${may}`, { [path]: [`not available on the ${caller.tenantTier} tier`] });
    }
    if (item.operation === 'text-to-image' && !offersAspectRatio(model, item.aspectRatio)) {
      const offered = MODEL_IDS.filter((id) => serves(id, operation) && takesReferences(id, references) && offersAspectRatio(id, item.aspectRatio));
      throw badRequest(`model ${model} does not make ${item.aspectRatio} images${offered.length > 0 ? `; for ${item.aspectRatio} use: ${offered.join(', ')}` : `; ask for another aspect ratio`}`, { [`${field}aspectRatio`]: [`${model} does not make ${item.aspectRatio}`] });
    }
    if (!offersScale(model)) {
      const offered = modelDefinition(model).scales.join(' or ');
      throw badRequest(`model ${model} upscales by ${offered} only; ask for that scale, or name a model that offers ${scale}`, { [`${field}scale`]: [`${model} upscales by ${offered} only`] });
    }
    if (item.outputs > modelDefinition(model).maxOutputs) {
      // Models without num_outputs make one image a prediction; several predictions for one request are not offered yet.
      const able = modelsFor(operation).filter((id) => modelDefinition(id).maxOutputs >= item.outputs && takesReferences(id, references));
      const instead = able.length > 0 ? `use one that takes num_outputs (${able.join(', ')})` : `no model for ${operation} makes more than one yet`;
      throw badRequest(`model ${model} makes one image per prediction; for ${item.outputs} outputs ${instead}, or ask for one`, { [`${field}outputs`]: [`${model} makes one image per prediction`] });
    }
    return model;
  };

  /** The tenant's sources the items name as sourceId or references, by id (one query, none for a prompt alone); one that is not there is NOT_FOUND on its field. */
  async function sourcesFor(caller: Caller, items: readonly BatchItemInput[], field: (index: number) => string): Promise<ReadonlyMap<string, ImageSource>> {
    const ids = [...new Set(items.flatMap((item) => [...(item.operation === 'text-to-image' ? [] : [item.sourceId]), ...referencesOf(item)]))];
    if (ids.length === 0) return NO_SOURCES;
    const found = new Map((await findImageSources(db, caller.tenantId, ids)).map((source) => [source.id, source]));
    const missing = items.findIndex((item) => item.operation !== 'text-to-image' && !found.has(item.sourceId));
    const item = items[missing];
    // Another tenant's source answers exactly as a missing one.
    if (item && item.operation !== 'text-to-image') throw notFound('source', item.sourceId, `${field(missing)}sourceId`);
    const reference = missingReference(items, found, field);
    if (reference) throw notFound('source', reference.id, reference.path);
    return found;
  }

  const toRow = (caller: Caller, item: BatchItemInput, sources: ReadonlyMap<string, ImageSource>, batchId: string | null, idempotencyKey: string | null, origin: CallOrigin, field = ''): NewGenerationInput => {
    const model = chooseModel(caller, item, field);
    const seed = 'seed' in item ? (item.seed ?? null) : null;
    const prompt = 'prompt' in item ? item.prompt : '';
    const source = item.operation === 'text-to-image' ? undefined : sources.get(item.sourceId);
    const references = referencesOf(item).flatMap((id) => sources.get(id) ?? []);
    const modelRequest: ModelRequest = {
      operation: item.operation,
      prompt,
      negativePrompt: item.operation === 'text-to-image' ? (item.negativePrompt ?? null) : null,
      // Image operations follow the source's shape; the stored ratio is not sent for them.
      aspectRatio: item.operation === 'text-to-image' ? item.aspectRatio : '1:1',
      seed,
      strength: item.operation === 'image-to-image' ? item.strength : null,
      scale: item.operation === 'upscale' ? item.scale : null,
      outputs: item.outputs,
    };
    const request: GenerationRequestJson = {
      platforms: item.platforms,
      customSizes: item.sizes,
      formats: item.formats,
      crop: item.crop,
      aspectRatio: modelRequest.aspectRatio,
      seed,
      negativePrompt: modelRequest.negativePrompt,
      // A prompt with one output is what every row held before: its request is written as it was
      // (readers take what is absent as text-to-image, one output), so an idempotent retry across
      // an upgrade still matches its first request, and the hot path writes no more than before.
      ...(item.outputs > 1 ? { outputs: item.outputs } : {}),
      ...(references.length > 0 ? { references: references.map(inputImage) } : {}),
      ...(source
        ? {
            operation: item.operation,
            input: { kind: 'source' as const, sourceId: source.id, contentHash: source.content_hash, storageKey: source.storage_key, format: source.format },
            strength: modelRequest.strength,
            scale: modelRequest.scale,
          }
        : {}),
    };
    return {
      id: newId(),
      tenantId: caller.tenantId,
      batchId,
      prompt,
      model,
      price: pricing(MODELS[model].price, cachePriceShare, item.outputs),
      // What the provider would be sent decides what is identical (an input image by its content);
      // platforms and formats are Kiln's own work.
      fingerprint: providerFingerprint(model, modelRequest, source?.content_hash ?? null, references.map((reference) => reference.content_hash)),
      mayReuse: mayReuse(item.cache, seed, modelDefinition(model).deterministic),
      request,
      priority: item.priority,
      idempotencyKey,
      subject: item.subject ?? null,
      deadlineSeconds: item.deadlineSeconds ?? defaultDeadlineSeconds ?? null,
      agedBySeconds: priorityHeadStartSeconds(item.priority, priorityAgingSeconds),
      requestId: origin.requestId,
      traceparent: origin.traceparent ?? null,
    };
  };

  const assetView = (asset: Asset) => toAssetView(asset, publicUrl());

  /** Runs a write that reserves credit; a balance that cannot cover it becomes PAYMENT_REQUIRED, saying by how much. */
  async function reserving<T>(caller: Caller, rows: readonly NewGenerationInput[], write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (!isInsufficientCredit(error)) throw error;
      const cost = rows.reduce((sum, row) => sum + row.price.reserve, 0);
      const balance = await findCreditBalance(db, caller.tenantId);
      const what = rows.length === 1 ? 'this generation reserves' : `these ${rows.length} generations reserve`;
      throw paymentRequired(`not enough credit: ${what} ${formatUsd(cost)}, and ${formatUsd(balance?.available ?? 0)} is available; nothing was queued`);
    }
  }

  const summaryView = (generation: Generation): GenerationSummary => ({
    id: generation.id,
    batchId: generation.batch_id,
    subject: generation.subject,
    state: generation.state,
    stage: generation.stage,
    operation: operationOf(generation.request.operation),
    prompt: generation.prompt,
    sourceId: generation.request.input?.sourceId ?? null,
    outputs: generation.request.outputs ?? 1,
    model: generation.model,
    predictionId: generation.prediction_id,
    servedFrom: generation.served_from_kind && generation.served_from_id ? { kind: generation.served_from_kind, generationId: generation.served_from_id } : null,
    deadlineAt: generation.deadline_at,
    error: generation.error_code ? { code: generation.error_code, message: generation.error_message ?? '' } : null,
    createdAt: generation.created_at,
    startedAt: generation.started_at,
    finishedAt: generation.finished_at,
  });

  const eventView = (event: GenerationEvent): StageEvent => ({ id: event.id, stage: event.stage, at: event.at, data: event.data });

  /**
   * Rows and their 'queued' events, in one transaction. The row is the queue entry: the
   * dispatcher (jobs/dispatch/) gives it its create job when its turn comes, and the NOTIFY
   * (sent at commit) wakes it. A row served from an earlier success gets its copy job instead;
   * one that joined identical work waits for it (db/generations.ts).
   */
  async function insertQueued(trx: Transaction<Database>, rows: readonly NewGenerationInput[]): Promise<QueuedRow[]> {
    const inserted = await insertGenerations(trx, rows);
    const copies = inserted.flatMap(({ id, servedFrom }) => (servedFrom?.kind === 'cache' ? [{ generationId: id, copyOf: servedFrom.generationId }] : []));
    await queue.enqueueCopies(trx, copies);
    await notifyDispatcher(trx);
    if (!onQueued) return [];
    const tenantOf = new Map(rows.map((row) => [row.id, row.tenantId]));
    return inserted.map(({ id, servedFrom }) => ({ tenantId: tenantOf.get(id) ?? '', servedFrom: servedFrom?.kind ?? 'own' }));
  }

  /** Runs a transaction that queues generations and reports them once it has committed. */
  async function queueing<T>(run: (trx: Transaction<Database>, queued: QueuedRow[]) => Promise<T>): Promise<T> {
    const queued: QueuedRow[] = [];
    const result = await db.transaction().execute((trx) => run(trx, queued));
    if (queued.length > 0) onQueued?.(queued);
    return result;
  }

  // Concurrent generate calls share transactions (see group-commit.ts).
  const generateCommits = createGroupCommit<NewGenerationInput>({
    write: (rows) => queueing(async (trx, queued) => void queued.push(...(await insertQueued(trx, rows)))),
    ...groupCommit,
    isItemError: isDataError,
  });

  /** A repeated idempotency key answers with the first generation, if the request is the same. */
  function replay(existing: Generation, repeated: NewGenerationInput): GenerationDeduplicated {
    const same =
      existing.prompt === repeated.prompt &&
      existing.model === repeated.model &&
      existing.priority === repeated.priority &&
      existing.subject === repeated.subject &&
      existing.may_reuse === repeated.mayReuse &&
      canonicalJson(existing.request) === canonicalJson(repeated.request);
    if (!same) {
      throw conflict(`idempotencyKey "${existing.idempotency_key}" was already used for a different request; use a new key for a new request`);
    }
    return { id: existing.id, status: existing.state, deduplicated: true };
  }

  /** A repeated batch key answers with the first batch, if the request is the same. */
  async function replayBatch(existing: { id: string; idempotency_key: string | null; request_hash: string | null }, requestHash: string): Promise<BatchAccepted> {
    if (existing.request_hash !== requestHash) {
      throw conflict(`idempotencyKey "${existing.idempotency_key}" was already used for a different batch; use a new key for a new request`);
    }
    const generations = await listBatchGenerations(db, existing.id);
    return { batchId: existing.id, ids: generations.map((generation) => generation.id), deduplicated: true };
  }

  return {
    async generate(caller: Caller, input: GenerateInput, origin: CallOrigin): Promise<GenerateAnswer> {
      const key = input.idempotencyKey ?? null;
      // Text-to-image (the hot path) names no source unless it has references: no query.
      const sources = input.operation === 'text-to-image' && !input.references ? NO_SOURCES : await sourcesFor(caller, [input], () => '');
      const row = toRow(caller, input, sources, null, key, origin);
      await requestLimiter.admit(caller.tenantId, new Map([[input.subject ?? null, 1]]), '(input)');
      const earlier = key ? await findByIdempotencyKey(db, caller.tenantId, key, idempotencyKeySeconds) : undefined;
      if (earlier) return replay(earlier, row);
      if (!key) {
        await reserving(caller, [row], () => generateCommits.submit(row));
        return { id: row.id, status: 'queued', deduplicated: false };
      }
      try {
        // Alone, so that a duplicate key fails this request only.
        await reserving(caller, [row], () =>
          queueing(async (trx, queued) => {
            await releaseExpiredIdempotencyKey(trx, 'generations', caller.tenantId, key, idempotencyKeySeconds);
            queued.push(...(await insertQueued(trx, [row])));
          }),
        );
        return { id: row.id, status: 'queued', deduplicated: false };
      } catch (error) {
        // Two requests with one idempotency key raced: the loser answers with the winner.
        const winner = isUniqueViolation(error) ? await findByIdempotencyKey(db, caller.tenantId, key, idempotencyKeySeconds) : undefined;
        if (winner) return replay(winner, row);
        throw error;
      }
    },

    async batch(caller: Caller, input: BatchInput, origin: CallOrigin): Promise<BatchAccepted> {
      const { idempotencyKey, ...request } = input;
      const key = idempotencyKey === undefined ? null : { idempotencyKey, requestHash: createHash('sha256').update(canonicalJson(request)).digest('hex') };
      // A repeated key answers before anything is counted: the batch was queued (and counted) once.
      const earlier = key ? await findBatchByIdempotencyKey(db, caller.tenantId, key.idempotencyKey, idempotencyKeySeconds) : undefined;
      if (earlier && key) return replayBatch(earlier, key.requestHash);
      // An item's own subject wins over the batch's. The rows are made (and their models checked)
      // before any budget is taken; they get their batch's id once it exists.
      const sources = await sourcesFor(caller, request.items, (index) => `items.${index}.`);
      const prepared = request.items.map((item, index) => toRow(caller, { ...item, subject: item.subject ?? request.subject }, sources, null, null, origin, `items.${index}.`));
      const perSubject = new Map<string | null, number>();
      for (const row of prepared) perSubject.set(row.subject, (perSubject.get(row.subject) ?? 0) + 1);
      await requestLimiter.admit(caller.tenantId, perSubject, 'items');
      try {
        return await reserving(caller, prepared, () =>
          queueing(async (trx, queued) => {
            if (key) await releaseExpiredIdempotencyKey(trx, 'batches', caller.tenantId, key.idempotencyKey, idempotencyKeySeconds);
            const batchId = await insertBatch(trx, caller.tenantId, prepared.length, key);
            const rows = prepared.map((row) => ({ ...row, batchId }));
            queued.push(...(await insertQueued(trx, rows)));
            return { batchId, ids: rows.map((row) => row.id), deduplicated: false };
          }),
        );
      } catch (error) {
        // Two batches with one idempotency key raced: the loser answers with the winner.
        const winner = key && isUniqueViolation(error) ? await findBatchByIdempotencyKey(db, caller.tenantId, key.idempotencyKey, idempotencyKeySeconds) : undefined;
        if (winner && key) return replayBatch(winner, key.requestHash);
        throw error;
      }
    },

    async cancelBatch(caller: Caller, batchId: string): Promise<BatchCanceled> {
      if (!(await findBatch(db, caller.tenantId, batchId))) throw notFound('batch', batchId);
      return db.transaction().execute(async (trx) => {
        const canceled = await cancelBatchGenerations(trx, caller.tenantId, batchId);
        for (const generation of canceled) {
          if (generation.prediction_id) await queue.enqueueCancelPrediction(trx, { generationId: generation.id, predictionId: generation.prediction_id });
        }
        return { batchId, canceled: canceled.map((generation) => generation.id) };
      });
    },

    async models(caller: Caller): Promise<ModelView[]> {
      return MODEL_IDS.map((id) => ({ id, operations: [...modelDefinition(id).operations], tier: MODELS[id].tier, price: MODELS[id].price, available: mayUse(id, caller.tenantTier) }));
    },

    async status(caller: Caller, id: string): Promise<GenerationStatusView> {
      const generation = await findGeneration(db, caller.tenantId, id);
      if (!generation) throw notFound('generation', id);
      assertMayReadGeneration(caller, generation);
      const [assets, events, queue] = await Promise.all([
        listAssets(db, [id]),
        listEvents(db, id),
        // A follower waits for the generation it follows, not in a lane.
        generation.state === 'queued' && generation.served_from_id === null ? estimateQueue(db, generation, estimates) : null,
      ]);
      return { ...summaryView(generation), queue, assets: assets.map(assetView), events: events.map(eventView) };
    },

    async batchStatus(caller: Caller, batchId: string): Promise<BatchStatusView> {
      const batch = await findBatch(db, caller.tenantId, batchId);
      if (!batch) throw notFound('batch', batchId);
      assertMayReadBatch(caller, batchId);
      const [counts, generations] = await Promise.all([countBatchStates(db, batchId), listBatchGenerations(db, batchId)]);
      const finished = counts.succeeded + counts.failed + counts.canceled;
      // Item by item: which failed, and why (the index is the item's place in the batch).
      const failures = generations.flatMap((generation, index) =>
        generation.state === 'failed' ? [{ index, id: generation.id, error: { code: generation.error_code ?? 'internal_error', message: generation.error_message ?? '' } }] : [],
      );
      return { batchId, total: batch.item_count, counts, done: finished === batch.item_count, failures, createdAt: batch.created_at };
    },

    async list(caller: Caller, input: ListInput): Promise<GenerationPage> {
      if (input.cursor && !(await findGeneration(db, caller.tenantId, input.cursor))) {
        throw badRequest('cursor is not valid; pass nextCursor from the previous page', { cursor: ['not a cursor from list()'] });
      }
      const generations = await listGenerations(db, {
        tenantId: caller.tenantId,
        ...(input.states ? { states: input.states } : {}),
        ...(input.batchId ? { batchId: input.batchId } : {}),
        ...(input.subject !== undefined ? { subject: input.subject } : {}),
        ...(input.model ? { model: input.model } : {}),
        ...(input.createdAfter ? { createdAfter: new Date(input.createdAfter) } : {}),
        ...(input.createdBefore ? { createdBefore: new Date(input.createdBefore) } : {}),
        ...(input.cursor ? { after: input.cursor } : {}),
        limit: input.limit + 1, // one extra tells whether another page exists
      });
      const page = generations.slice(0, input.limit);
      const assets = await listAssets(db, page.map((generation) => generation.id));
      return {
        items: page.map((generation) => ({
          ...summaryView(generation),
          assets: assets.filter((asset) => asset.generation_id === generation.id).map(assetView),
        })),
        nextCursor: generations.length > input.limit ? (page.at(-1)?.id ?? null) : null,
      };
    },

    async cancel(caller: Caller, id: string): Promise<CancelAnswer> {
      return db.transaction().execute(async (trx) => {
        const outcome = await cancelGeneration(trx, caller.tenantId, id);
        if (outcome.kind === 'not_found') throw notFound('generation', id);
        if (outcome.kind === 'already_final') {
          throw conflict(`generation ${id} already ${outcome.state}; only queued or running generations can be canceled`);
        }
        if (outcome.generation.prediction_id) {
          await queue.enqueueCancelPrediction(trx, { generationId: id, predictionId: outcome.generation.prediction_id });
        }
        return { id, status: outcome.generation.state };
      });
    },
  };
}

function sqlState(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
/** Micro-dollars as a person reads them: $0.003, $12.50. */
function formatUsd(microUsd: number): string {
  const usd = toUsd(microUsd);
  return `$${usd >= 1 ? usd.toFixed(2) : Number(usd.toPrecision(3)).toString()}`;
}

function isDataError(error: unknown): boolean {
  return /^2[23]/.test(sqlState(error) ?? '');
}
