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
  quoteReservation,
  releaseExpiredIdempotencyKey,
  type NewGenerationInput,
} from '../db/generations.ts';
import { findLatestOfChain, listChildren, listParts, lockParents, tieGenerations, type GenerationTies } from '../db/chains.ts';
import { releaseChildrenOf } from '../jobs/phases/dependents.ts';
import type { Asset, Database, Generation, GenerationEvent, GenerationRequestJson, ServedFromKind } from '../db/schema.ts';
import { canonicalJson } from '../jobs/provider/cache-key.ts';
import { MODEL_IDS, MODELS, OPERATIONS, mayUse, modelDefinition, type ModelPrice, type ModelTier, type Operation } from '../jobs/provider/models.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { notifyDispatcher } from '../db/dispatch.ts';
import { isInsufficientCredit, toUsd } from '../db/credits.ts';
import { createIdFactory } from '../db/ids.ts';
import { estimateQueue, type EstimateSettings, type QueueEstimate as DbQueueEstimate } from '../db/queue-estimates.ts';
import type {
  BatchAccepted,
  BatchCanceled,
  BatchInput,
  BatchItemInput,
  BatchStatusView,
  CancelAnswer,
  ChainView,
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
  RelatedGeneration,
  StageEvent,
} from './api-types.ts';
import { createGenerationPlanner, type GenerationPlannerOptions, type Plan, type PlanMeta } from './generation-planner.ts';
import { assertMayReadBatch, assertMayReadGeneration, type Caller } from './caller.ts';
import { assetView as toAssetView } from './realtime/event-view.ts';
import { badRequest, conflict, notFound, paymentRequired } from './errors.ts';
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
  /** The product-photo optimiser's default target and the pixel limit its upscale keeps to. */
  optimizer: GenerationPlannerOptions['optimizer'];
  /** Told of the generations written, once committed, and how each is served (own work, cache, joined). */
  onQueued?: (rows: readonly QueuedRow[]) => void;
}

export interface QueuedRow {
  tenantId: string;
  servedFrom: 'own' | ServedFromKind;
}

/** The estimate goes out as db/queue-estimates.ts computes it: the API's type must not drift from it. */
type QueueEstimateMatchesTheQuery = Expect<Equal<DbQueueEstimate, QueueEstimate>>;
/** The model table's prices and tiers go out as they are (api-types.ts restates them for the client's declarations). */
type ModelPriceMatchesTheTable = Expect<Equal<ModelPrice, ModelView['price']>>;
type ModelTierMatchesTheTable = Expect<Equal<ModelTier, ModelView['tier']>>;
type OperationsMatchTheTable = Expect<Equal<Operation, ApiOperation>>;

/** A stored row's operation; rows from before image operations name none. */
const operationOf = (stored: string | undefined): Operation => (OPERATIONS as readonly string[]).includes(stored ?? '') ? (stored as Operation) : 'text-to-image';

export function createGenerationService({ db, queue, publicUrl, defaultDeadlineSeconds, groupCommit, estimates, priorityAgingSeconds, requestLimiter, idempotencyKeySeconds, cachePriceShare, optimizer, onQueued }: GenerationServiceOptions): GenerationService {
  const newId = createIdFactory();

  const planner = createGenerationPlanner({ db, newId, defaultDeadlineSeconds, priorityAgingSeconds, cachePriceShare, optimizer });

  /** Each item planned (generations.ts rows and their ties), after one lookup of what they start from. */
  async function planAll(caller: Caller, items: readonly BatchItemInput[], meta: (index: number) => PlanMeta): Promise<Plan[]> {
    const needsLookup = items.some((item) => item.operation !== 'text-to-image' || item.references);
    // Text-to-image (the hot path) starts from nothing unless it shows references: no query.
    const inputs = needsLookup ? await planner.resolveInputs(caller, items, (index) => meta(index).field) : items.map(() => ({ input: { kind: 'none' as const }, references: [] }));
    return items.map((item, index) => planner.plan(caller, item, inputs[index]!, meta(index)));
  }

  const assetView = (asset: Asset) => toAssetView(asset, publicUrl());

  /**
   * Runs a write that reserves credit; a balance that cannot cover it becomes PAYMENT_REQUIRED,
   * quoting what the insert reserves — a request served from cache its cache price, not its full one.
   */
  async function reserving<T>(rows: readonly NewGenerationInput[], requests: number, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (!isInsufficientCredit(error)) throw error;
      const quote = await quoteReservation(db, rows);
      // Counted as the caller asked: a request made of parts (several outputs, the optimiser's steps) is one.
      const what = requests === 1 ? 'this generation reserves' : `these ${requests} generations reserve`;
      const cached =
        quote.fromCache === 0
          ? ''
          : rows.length === 1
            ? ', the cache price (it is served from an identical earlier success)'
            : ` (${quote.fromCache} of ${requests === 1 ? 'its parts' : 'them'} the cache price: served from identical earlier successes)`;
      throw paymentRequired(`not enough credit: ${what} ${formatUsd(quote.reserve)}${cached}, and ${formatUsd(quote.available)} is available; nothing was queued`);
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
    sourceId: generation.request.input?.kind === 'source' ? generation.request.input.sourceId : null,
    references: (generation.request.references ?? []).flatMap((reference) => (reference.kind === 'source' ? [reference.sourceId] : [])),
    from: generation.parent_id === null ? null : { generationId: generation.parent_id, output: generation.parent_output ?? 0 },
    chainId: generation.chain_id,
    partOf: generation.part_of,
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

  const relatedView = (generation: Generation): RelatedGeneration => ({
    id: generation.id,
    operation: operationOf(generation.request.operation),
    model: generation.model,
    state: generation.state,
    error: generation.error_code ? { code: generation.error_code, message: generation.error_message ?? '' } : null,
    createdAt: generation.created_at,
  });

  /**
   * Rows and their 'queued' events, in one transaction. The row is the queue entry: the
   * dispatcher (jobs/dispatch/) gives it its create job when its turn comes, and the NOTIFY
   * (sent at commit) wakes it. A row served from an earlier success gets its copy job instead;
   * one that joined identical work waits for it (db/generations.ts).
   */
  async function insertQueued(trx: Transaction<Database>, rows: readonly NewGenerationInput[], ties: readonly GenerationTies[] = []): Promise<QueuedRow[]> {
    const inserted = await insertGenerations(trx, rows);
    await tieGenerations(trx, ties);
    await settleEndedParents(trx, ties);
    const copies = inserted.flatMap(({ id, servedFrom }) => (servedFrom?.kind === 'cache' ? [{ generationId: id, copyOf: servedFrom.generationId }] : []));
    await queue.enqueueCopies(trx, copies);
    await notifyDispatcher(trx);
    if (!onQueued) return [];
    const tenantOf = new Map(rows.map((row) => [row.id, row.tenantId]));
    return inserted.map(({ id, servedFrom }) => ({ tenantId: tenantOf.get(id) ?? '', servedFrom: servedFrom?.kind ?? 'own' }));
  }

  /**
   * Children queued to wait for a parent that was running when the request was read: the parent
   * is locked so it cannot end unseen; one that has ended meanwhile is dealt with here — its
   * success is handed to them now, and a failure refuses the request, as it would have at once.
   */
  async function settleEndedParents(trx: Transaction<Database>, ties: readonly GenerationTies[]): Promise<void> {
    const awaited = [...new Set(ties.flatMap((tie) => (tie.awaiting === 'input' && tie.parent ? [tie.parent.id] : [])))];
    for (const parent of await lockParents(trx, awaited)) {
      if (parent.state === 'failed' || parent.state === 'canceled') {
        throw conflict(`generation ${parent.id} ${parent.state === 'failed' ? 'failed' : 'was canceled'} while this request was made; build on a generation that succeeded or is still running`);
      }
      if (parent.state !== 'succeeded') continue;
      await releaseChildrenOf(trx, parent, (await listAssets(trx, [parent.id])).filter((asset) => asset.kind === 'original'));
    }
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
      canonicalJson(asRequested(existing.request)) === canonicalJson(asRequested(repeated.request));
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
      const [plan] = await planAll(caller, [input], () => ({ batchId: null, idempotencyKey: key, origin, field: '' }));
      const { primary: row, rows, ties } = plan!;
      await requestLimiter.admit(caller.tenantId, new Map([[input.subject ?? null, 1]]), '(input)');
      const earlier = key ? await findByIdempotencyKey(db, caller.tenantId, key, idempotencyKeySeconds) : undefined;
      if (earlier) return replay(earlier, row);
      if (!key && rows.length === 1 && ties.length === 0) {
        await reserving(rows, 1, () => generateCommits.submit(row));
        return { id: row.id, status: 'queued', deduplicated: false };
      }
      try {
        // Alone, so that a duplicate key fails this request only (and parts commit with their composite).
        await reserving(rows, 1, () =>
          queueing(async (trx, queued) => {
            if (key) await releaseExpiredIdempotencyKey(trx, 'generations', caller.tenantId, key, idempotencyKeySeconds);
            queued.push(...(await insertQueued(trx, rows, ties)));
          }),
        );
        return { id: row.id, status: 'queued', deduplicated: false };
      } catch (error) {
        // Two requests with one idempotency key raced: the loser answers with the winner.
        const winner = key && isUniqueViolation(error) ? await findByIdempotencyKey(db, caller.tenantId, key, idempotencyKeySeconds) : undefined;
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
      const items = request.items.map((item) => ({ ...item, subject: item.subject ?? request.subject }));
      const plans = await planAll(caller, items, (index) => ({ batchId: null, idempotencyKey: null, origin, field: `items.${index}.` }));
      const prepared = plans.map((plan) => plan.primary);
      const perSubject = new Map<string | null, number>();
      for (const row of prepared) perSubject.set(row.subject, (perSubject.get(row.subject) ?? 0) + 1);
      await requestLimiter.admit(caller.tenantId, perSubject, 'items');
      try {
        return await reserving(plans.flatMap((plan) => plan.rows), plans.length, () =>
          queueing(async (trx, queued) => {
            if (key) await releaseExpiredIdempotencyKey(trx, 'batches', caller.tenantId, key.idempotencyKey, idempotencyKeySeconds);
            const batchId = await insertBatch(trx, caller.tenantId, prepared.length, key);
            // The items are the batch's; their parts belong to their composites, not to it.
            const primaries = new Set(prepared.map((row) => row.id));
            const rows = plans.flatMap((plan) => plan.rows).map((row) => (primaries.has(row.id) ? { ...row, batchId } : row));
            queued.push(...(await insertQueued(trx, rows, plans.flatMap((plan) => plan.ties))));
            return { batchId, ids: prepared.map((row) => row.id), deduplicated: false };
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
      const [assets, events, queue, children, parts] = await Promise.all([
        listAssets(db, [id]),
        listEvents(db, id),
        // A follower waits for the generation it follows, and a held one for its input or parts, not in a lane.
        generation.state === 'queued' && generation.served_from_id === null && generation.awaiting === null ? estimateQueue(db, generation, estimates) : null,
        listChildren(db, caller.tenantId, id),
        listParts(db, id),
      ]);
      const optimized =
        generation.request.operation === 'optimize' && generation.state === 'succeeded' && generation.request.input?.bytes !== undefined
          ? { bytesBefore: generation.request.input.bytes, bytesAfter: assets.reduce((sum, asset) => sum + (asset.kind === 'variant' ? asset.bytes : 0), 0) }
          : null;
      return {
        ...summaryView(generation),
        queue,
        assets: assets.map(assetView),
        events: events.map(eventView),
        children: children.map(relatedView),
        parts: parts.map(relatedView),
        optimized,
      };
    },

    async chain(caller: Caller, id: string): Promise<ChainView> {
      const generation = await findGeneration(db, caller.tenantId, id);
      if (!generation) throw notFound('generation', id);
      assertMayReadGeneration(caller, generation);
      if (generation.chain_id === null) return { chainId: null, latest: generation.state === 'succeeded' ? summaryView(generation) : null };
      const latest = await findLatestOfChain(db, caller.tenantId, generation.chain_id);
      return { chainId: generation.chain_id, latest: latest ? summaryView(latest) : null };
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
        // A composite's parts end with it: those still queued by the database's trigger, those running here.
        for (const part of await listParts(trx, id)) {
          if (part.state !== 'running') continue;
          const ended = await cancelGeneration(trx, caller.tenantId, part.id);
          if (ended.kind === 'canceled' && ended.generation.prediction_id) await queue.enqueueCancelPrediction(trx, { generationId: part.id, predictionId: ended.generation.prediction_id });
        }
        return { id, status: outcome.generation.state };
      });
    },
  };
}

/**
 * A request as its caller made it: a generation built on another's output names that output
 * (`from`), and the input image it got from it, once made, is not part of what was asked.
 */
function asRequested(request: GenerationRequestJson): GenerationRequestJson {
  return request.from ? { ...request, input: null } : request;
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
