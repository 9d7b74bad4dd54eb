// How a validated request becomes the generations to insert: which model does it, what it
// costs, what the provider would be sent (its fingerprint), and — when one prediction cannot do
// it — the parts that can. Several outputs of a model that makes one image a prediction are one
// part per output, each with its own seed; the product-photo optimiser is a part per paid step
// (upscale when needed, remove the background), each a generation of its own, then Kiln's own
// framing. A request that builds on a generation still running waits for its output.
import { randomInt } from 'node:crypto';
import type { Kysely } from 'kysely';
import { findGenerationsByIds, type GenerationTies } from '../db/chains.ts';
import { pricing } from '../db/credits.ts';
import { listAssets, type NewGenerationInput } from '../db/generations.ts';
import { findImageSources } from '../db/image-sources.ts';
import { outputAsInput, type Asset, type Database, type Generation, type GenerationRequestJson, type InputImageJson } from '../db/schema.ts';
import { priorityHeadStartSeconds } from '../jobs/dispatch/select.ts';
import { mayReuse, providerFingerprint } from '../jobs/provider/cache-key.ts';
import {
  MODELS,
  MODEL_IDS,
  mayUse,
  modelDefinition,
  modelFor,
  modelsFor,
  modelsForTenantTier,
  offersAspectRatio,
  serves,
  takesReferences,
  type AspectRatio,
  type ModelId,
  type ModelOperation,
  type ModelRequest,
  type ModelTier,
  type UpscaleFactor,
} from '../jobs/provider/models.ts';
import type { BatchItemInput, OptimizeInput } from './api-types.ts';
import type { Caller } from './caller.ts';
import { badRequest, conflict, forbidden, notFound } from './errors.ts';
import type { CallOrigin } from './services.ts';

export interface GenerationPlannerOptions {
  db: Kysely<Database>;
  newId: () => string;
  /** Deadline of a generation that does not ask for one. */
  defaultDeadlineSeconds: number | undefined;
  /** A priority point is worth this many seconds of waiting in the dispatch order. */
  priorityAgingSeconds: number;
  /** A generation served from an identical one is charged this share of what its model reserves. */
  cachePriceShare: number;
  optimizer: {
    /** A photo whose short edge is below this is upscaled first, unless the request names its own target. */
    targetShortEdge: number;
    /** An upscale may not make more pixels than the renderer reads. */
    maxPixels: number;
  };
}

/** The rows one request becomes: the one its caller is answered with first, then its parts. */
export interface Plan {
  primary: NewGenerationInput;
  rows: NewGenerationInput[];
  ties: GenerationTies[];
}

/** Where an item's input image stands: none (text-to-image), known, or the output of a generation still running. */
/** What an item starts from: its input image, and the reference images it shows the model. */
export interface ResolvedImages {
  input: ResolvedInput;
  references: InputImageJson[];
}

export type ResolvedInput =
  | { kind: 'none' }
  | { kind: 'ready'; image: InputImageJson; width: number; height: number; from: { generationId: string; output: number } | null }
  | { kind: 'awaiting'; from: { generationId: string; output: number } };

export interface PlanMeta {
  batchId: string | null;
  idempotencyKey: string | null;
  origin: CallOrigin;
  /** The item's field path prefix in error details ('items.3.'), '' for generate. */
  field: string;
}

/** A tenant's tier picks the model when the request names neither model nor tier. */
const TIER_FOR_TENANT: Record<string, ModelTier> = { free: 'fast', standard: 'fast', pro: 'quality' };

/** What picks a model: an operation, and what the request says of it. */
interface ModelChoice {
  operation: ModelOperation;
  scale: UpscaleFactor | null;
  model?: ModelId | undefined;
  tier?: ModelTier | undefined;
  /** Reference images it shows the model (few models take them). */
  references: number;
  /** Text-to-image's shape (a model may not make every ratio). */
  aspectRatio?: AspectRatio | undefined;
}

/** The reference images a request names (text-to-image and edit take them), in its order. */
const referencesOf = (item: BatchItemInput): readonly string[] => (item.operation === 'text-to-image' || item.operation === 'edit' ? (item.references ?? []) : []);

/**
 * A request with references needs a model that takes them: one named that takes none (or fewer)
 * is BAD_REQUEST on `model`, naming those that do; so is a request no model of its operation can serve.
 */
function checkReferences(model: ModelId, choice: ModelChoice, field: string): void {
  if (takesReferences(model, choice.references)) return;
  const able = modelsFor(choice.operation).filter((id) => takesReferences(id, choice.references));
  const instead = able.length > 0 ? `with reference images use: ${able.join(', ')}` : `no model for ${choice.operation} takes them`;
  throw badRequest(`model ${model} takes no reference images; ${instead}`, { [`${field}${choice.model ? 'model' : 'references'}`]: ['the model takes no reference images'] });
}

/** One generation's own work, as a model does it: a request's, or one part's. */
interface Work {
  model: ModelId;
  modelRequest: ModelRequest;
  /** Its variants: the request's own, or none for a part (its composite renders them). */
  render: Pick<GenerationRequestJson, 'platforms' | 'customSizes' | 'formats' | 'crop'>;
  input: ResolvedInput;
  /** Reference images shown to the model, in order. */
  references: readonly InputImageJson[];
  mayReuse: boolean;
}

/** Distinct seeds for `count` parts: from the request's seed up, or drawn at random. */
export function partSeeds(seed: number | null, count: number): number[] {
  if (seed !== null) return Array.from({ length: count }, (_, index) => (seed + index) % 2 ** 32);
  const seeds = new Set<number>();
  while (seeds.size < count) seeds.add(randomInt(0, 2 ** 32 - 1));
  return [...seeds];
}

/**
 * The upscale factor that brings a short edge to the target (2 or 4, as upscalers offer), or
 * null when none is needed — or none fits under the pixel limit.
 */
export function upscaleFactorFor(size: { width: number; height: number }, targetShortEdge: number, maxPixels: number): UpscaleFactor | null {
  const shortEdge = Math.min(size.width, size.height);
  if (shortEdge >= targetShortEdge) return null;
  const fits = (factor: number) => size.width * size.height * factor * factor <= maxPixels;
  const wanted: UpscaleFactor = shortEdge * 2 >= targetShortEdge ? 2 : 4;
  if (fits(wanted)) return wanted;
  return fits(2) ? 2 : null;
}

export function createGenerationPlanner(options: GenerationPlannerOptions) {
  const { db, newId } = options;

  /**
   * The model for a choice (by name, by `tier`, or its tenant's tier's pick) among those that
   * serve the operation, if the tenant's tier may use it. `path` names the field that chose it.
   */
  function chooseModel(caller: Caller, choice: ModelChoice, field: string, operationField = 'operation'): ModelId {
    const { operation, scale, references } = choice;
    const offersScale = (id: ModelId) => scale === null || modelDefinition(id).scales.includes(scale);
    if (choice.model && !serves(choice.model, operation)) {
      const models = modelsFor(operation).join(', ');
      throw badRequest(`model ${choice.model} does not do ${operation}; for ${operation} use: ${models}`, { [`${field}model`]: [`does not do ${operation}`] });
    }
    const model = choice.model ?? modelFor(operation, choice.tier ?? TIER_FOR_TENANT[caller.tenantTier] ?? 'fast', (id) => offersScale(id) && takesReferences(id, references));
    checkReferences(model, choice, field);
    if (!mayUse(model, caller.tenantTier)) {
      const allowed = modelsForTenantTier(caller.tenantTier, operation).filter((id) => takesReferences(id, references));
      const what = operation === 'text-to-image' && references === 0 ? '' : ` for ${operation}${references > 0 ? ' with reference images' : ''}`;
      const may = allowed.length > 0 ? `it may use${what}: ${allowed.join(', ')}` : `it may use no model${what}`;
      // The field that chose it: the model or tier named, the references (few models take them), else the operation (its tenant's tier's pick).
      const path = `${field}${choice.tier && !choice.model ? 'tier' : choice.model ? 'model' : references > 0 ? 'references' : operation === 'text-to-image' ? 'model' : operationField}`;
      throw forbidden(`model ${model} is not available on the ${caller.tenantTier} tier; ${may}`, { [path]: [`not available on the ${caller.tenantTier} tier`] });
    }
    if (choice.aspectRatio && !offersAspectRatio(model, choice.aspectRatio)) {
      const ratio = choice.aspectRatio;
      const offered = MODEL_IDS.filter((id) => serves(id, operation) && takesReferences(id, references) && offersAspectRatio(id, ratio));
      throw badRequest(`model ${model} does not make ${ratio} images${offered.length > 0 ? `; for ${ratio} use: ${offered.join(', ')}` : `; ask for another aspect ratio`}`, { [`${field}aspectRatio`]: [`${model} does not make ${ratio}`] });
    }
    if (!offersScale(model)) {
      const offered = modelDefinition(model).scales.join(' or ');
      throw badRequest(`model ${model} upscales by ${offered} only; ask for that scale, or name a model that offers ${scale}`, { [`${field}scale`]: [`${model} upscales by ${offered} only`] });
    }
    return model;
  }

  /**
   * Each item's input image, by the sources and generations it names (one query each, none for
   * text-to-image). One that is not the tenant's is NOT_FOUND on its field, exactly as one that
   * does not exist; a generation that failed cannot be built on.
   */
  async function resolveInputs(caller: Caller, items: readonly BatchItemInput[], field: (index: number) => string): Promise<ResolvedImages[]> {
    const sourceIds = [...new Set(items.flatMap((item) => [...(item.operation !== 'text-to-image' && item.sourceId ? [item.sourceId] : []), ...referencesOf(item)]))];
    const parentIds = [...new Set(items.flatMap((item) => (item.operation !== 'text-to-image' && item.from ? [item.from] : [])))];
    const [sources, parents] = await Promise.all([
      sourceIds.length > 0 ? findImageSources(db, caller.tenantId, sourceIds) : [],
      parentIds.length > 0 ? findGenerationsByIds(db, caller.tenantId, parentIds) : [],
    ]);
    const sourceById = new Map(sources.map((source) => [source.id, source]));
    const parentById = new Map(parents.map((parent) => [parent.id, parent]));
    const succeeded = parents.filter((parent) => parent.state === 'succeeded').map((parent) => parent.id);
    const originals = (await listAssets(db, succeeded)).filter((asset) => asset.kind === 'original');
    const inputOf = (item: BatchItemInput, index: number): ResolvedInput => {
      if (item.operation === 'text-to-image') return { kind: 'none' };
      if (item.sourceId) {
        const source = sourceById.get(item.sourceId);
        if (!source) throw notFound('source', item.sourceId, `${field(index)}sourceId`);
        const image: InputImageJson = { kind: 'source', sourceId: source.id, contentHash: source.content_hash, storageKey: source.storage_key, format: source.format, bytes: source.bytes };
        return { kind: 'ready', image, width: source.width, height: source.height, from: null };
      }
      const parentId = item.from ?? '';
      const parent = parentById.get(parentId);
      if (!parent || (caller.scope && !mayBuildOn(caller, parent))) throw notFound('generation', parentId, `${field(index)}from`);
      return inputFromGeneration(parent, item.fromOutput ?? 0, originals, `${field(index)}`);
    };
    const referencesOfItem = (item: BatchItemInput, index: number): InputImageJson[] =>
      referencesOf(item).map((id, at) => {
        const source = sourceById.get(id);
        // Another tenant's source answers exactly as a missing one.
        if (!source) throw notFound('source', id, `${field(index)}references.${at}`);
        return { kind: 'source', sourceId: source.id, contentHash: source.content_hash, storageKey: source.storage_key, format: source.format };
      });
    // Every item's input first, then every item's references: the first missing input is the one reported.
    const inputs = items.map(inputOf);
    return items.map((item, index) => ({ input: inputs[index]!, references: referencesOfItem(item, index) }));
  }

  /** A scoped token may build only on what it may read. */
  const mayBuildOn = (caller: Caller, parent: Generation) =>
    !caller.scope || (caller.scope.kind === 'generation' ? caller.scope.id === parent.id : caller.scope.id === parent.batch_id);

  function inputFromGeneration(parent: Generation, output: number, originals: readonly Asset[], field: string): ResolvedInput {
    const from = { generationId: parent.id, output };
    const outputs = parent.request.outputs ?? 1;
    if (output >= outputs) {
      throw badRequest(`generation ${parent.id} makes ${outputs} output${outputs === 1 ? '' : 's'}; fromOutput must be below ${outputs}`, { [`${field}fromOutput`]: [`below ${outputs}`] });
    }
    if (parent.state === 'failed' || parent.state === 'canceled') {
      throw conflict(`generation ${parent.id} ${parent.state === 'failed' ? 'failed' : 'was canceled'}; build on a generation that succeeded or is still running`);
    }
    if (parent.state !== 'succeeded') return { kind: 'awaiting', from };
    const original = originals.find((asset) => asset.generation_id === parent.id && asset.output_index === output);
    const image = original && outputAsInput(parent.id, original);
    if (!original || !image) throw conflict(`output ${output + 1} of generation ${parent.id} is no longer stored; build on a newer generation, or upload the image`);
    return { kind: 'ready', image, width: original.width, height: original.height, from };
  }

  /** The row of one generation's own work (a request's, or a part's). */
  function rowFor(caller: Caller, item: BatchItemInput, work: Work, meta: PlanMeta): NewGenerationInput {
    const { model, modelRequest, input } = work;
    const image = input.kind === 'ready' ? input.image : null;
    const from = input.kind === 'none' ? null : input.from;
    const request: GenerationRequestJson = {
      ...work.render,
      aspectRatio: modelRequest.aspectRatio,
      seed: modelRequest.seed,
      negativePrompt: modelRequest.negativePrompt,
      // A prompt with one output is what every row held before: its request is written as it was
      // (readers take what is absent as text-to-image, one output), so an idempotent retry across
      // an upgrade still matches its first request, and the hot path writes no more than before.
      ...(modelRequest.outputs > 1 ? { outputs: modelRequest.outputs } : {}),
      ...(work.references.length > 0 ? { references: [...work.references] } : {}),
      ...(input.kind === 'none' ? {} : { operation: modelRequest.operation, input: image, strength: modelRequest.strength, scale: modelRequest.scale }),
      ...(from ? { from } : {}),
    };
    // Work that waits for its input has no fingerprint yet: it gets one when its input is made.
    const awaiting = input.kind === 'awaiting';
    return {
      id: newId(),
      tenantId: caller.tenantId,
      batchId: meta.batchId,
      prompt: modelRequest.prompt,
      model,
      price: pricing(MODELS[model].price, options.cachePriceShare, modelRequest.outputs),
      // What the provider would be sent decides what is identical (an input image by its content);
      // platforms and formats are Kiln's own work.
      fingerprint: awaiting ? null : providerFingerprint(model, modelRequest, image?.contentHash ?? null, work.references.map((reference) => reference.contentHash)),
      mayReuse: awaiting ? false : work.mayReuse,
      request,
      priority: item.priority,
      idempotencyKey: meta.idempotencyKey,
      subject: item.subject ?? null,
      deadlineSeconds: item.deadlineSeconds ?? options.defaultDeadlineSeconds ?? null,
      agedBySeconds: priorityHeadStartSeconds(item.priority, options.priorityAgingSeconds),
      requestId: meta.origin.requestId,
      traceparent: meta.origin.traceparent ?? null,
    };
  }

  /** How a row is tied to what it builds on and what it is part of. */
  function tiesOf(row: NewGenerationInput, input: ResolvedInput, mayReuseOnRelease: boolean, part?: { of: string; index: number }): GenerationTies | undefined {
    const parent = input.kind === 'none' || input.from === null ? undefined : { id: input.from.generationId, output: input.from.output };
    if (!parent && !part) return undefined;
    return {
      id: row.id,
      ...(parent ? { parent } : {}),
      ...(part ? { part } : {}),
      ...(input.kind === 'awaiting' ? { awaiting: 'input' as const, mayReuse: mayReuseOnRelease } : {}),
    };
  }

  /** A composite: no provider work of its own, so it reserves nothing and has no fingerprint. */
  function compositeRow(caller: Caller, item: BatchItemInput, work: Work, meta: PlanMeta, request: Partial<GenerationRequestJson>): NewGenerationInput {
    const row = rowFor(caller, item, work, meta);
    return { ...row, fingerprint: null, mayReuse: false, price: { ...row.price, reserve: 0, cache: 0 }, request: { ...row.request, ...request } };
  }

  function modelRequestOf(item: BatchItemInput, operation: ModelOperation, overrides: Partial<ModelRequest> = {}): ModelRequest {
    return {
      operation,
      prompt: 'prompt' in item ? item.prompt : '',
      negativePrompt: item.operation === 'text-to-image' ? (item.negativePrompt ?? null) : null,
      // Image operations follow the source's shape; the stored ratio is not sent for them.
      aspectRatio: item.operation === 'text-to-image' ? item.aspectRatio : '1:1',
      seed: 'seed' in item ? (item.seed ?? null) : null,
      strength: item.operation === 'image-to-image' ? item.strength : null,
      scale: item.operation === 'upscale' ? item.scale : null,
      outputs: item.outputs,
      ...overrides,
    };
  }

  const renderOf = (item: BatchItemInput): Work['render'] => ({ platforms: item.platforms, customSizes: item.sizes, formats: item.formats, crop: item.crop });
  /** A part renders no variants: its composite renders them from every part's image. */
  const NO_VARIANTS = (item: BatchItemInput): Work['render'] => ({ platforms: [], customSizes: [], formats: item.formats, crop: item.crop });

  function plan(caller: Caller, item: BatchItemInput, images: ResolvedImages, meta: PlanMeta): Plan {
    const { input, references } = images;
    if (item.operation === 'optimize') return planOptimize(caller, item, input, meta);
    const choice: ModelChoice = {
      operation: item.operation,
      scale: item.operation === 'upscale' ? item.scale : null,
      model: item.model,
      tier: item.tier,
      references: references.length,
      aspectRatio: item.operation === 'text-to-image' ? item.aspectRatio : undefined,
    };
    const model = chooseModel(caller, choice, meta.field);
    const definition = modelDefinition(model);
    const modelRequest = modelRequestOf(item, item.operation);
    const reuse = (seed: number | null) => mayReuse(item.cache, seed, definition.deterministic);
    if (item.outputs <= definition.maxOutputs) {
      const row = rowFor(caller, item, { model, modelRequest, render: renderOf(item), input, references, mayReuse: reuse(modelRequest.seed) }, meta);
      const tie = tiesOf(row, input, reuse(modelRequest.seed));
      return { primary: row, rows: [row], ties: tie ? [tie] : [] };
    }
    // The model makes one image a prediction: one part per output, each with its own seed.
    const composite = compositeRow(caller, item, { model, modelRequest, render: renderOf(item), input, references, mayReuse: false }, meta, {});
    const parts = partSeeds(modelRequest.seed, item.outputs).map((seed, index) => {
      const partRequest = { ...modelRequest, seed: definition.deterministic ? null : seed, outputs: 1 };
      const row = rowFor(caller, item, { model, modelRequest: partRequest, render: NO_VARIANTS(item), input, references, mayReuse: reuse(partRequest.seed) }, { ...meta, batchId: null, idempotencyKey: null });
      return { row, tie: tiesOf(row, input, reuse(partRequest.seed), { of: composite.id, index })! };
    });
    const compositeTie: GenerationTies = { ...(tiesOf(composite, input, false) ?? { id: composite.id }), awaiting: 'parts' };
    return { primary: composite, rows: [composite, ...parts.map((part) => part.row)], ties: [compositeTie, ...parts.map((part) => part.tie)] };
  }

  /** The optimiser: an upscale when the short edge is below the target, the background removed; both parts of a composite that frames the result. */
  function planOptimize(caller: Caller, item: OptimizeInput, input: ResolvedInput, meta: PlanMeta): Plan {
    const { field } = meta;
    if (item.model) throw badRequest('optimize picks a model for each of its steps; name a tier instead of a model', { [`${field}model`]: ['not taken by optimize'] });
    if (item.outputs !== 1) throw badRequest('optimize makes one catalogue image of a photo; ask for outputs: 1', { [`${field}outputs`]: ['must be 1 for optimize'] });
    if (input.kind !== 'ready') {
      throw conflict(`optimize needs the photo's size to plan its steps: wait until generation ${input.kind === 'awaiting' ? input.from.generationId : ''} has succeeded`);
    }
    const targetShortEdge = item.targetShortEdge ?? options.optimizer.targetShortEdge;
    const scale = upscaleFactorFor(input, targetShortEdge, options.optimizer.maxPixels);
    const choose = (operation: ModelOperation, factor: UpscaleFactor | null) => chooseModel(caller, { operation, scale: factor, tier: item.tier, references: 0 }, field);
    const upscaler = scale === null ? null : choose('upscale', scale);
    const remover = choose('remove-background', null);
    const render = { ...NO_VARIANTS(item), crop: 'pad' as const };
    const partMeta = { ...meta, batchId: null, idempotencyKey: null };

    const compositeRequest = modelRequestOf(item, 'remove-background', { outputs: 1 });
    const composite = compositeRow(caller, item, { model: remover, modelRequest: compositeRequest, render: { ...renderOf(item), crop: 'pad' }, input, references: [], mayReuse: false }, meta, {
      operation: 'optimize',
      optimize: { background: item.background, targetShortEdge },
    });
    const rows: NewGenerationInput[] = [composite];
    const ties: GenerationTies[] = [{ ...(tiesOf(composite, input, false) ?? { id: composite.id }), awaiting: 'parts' }];
    let stepInput: ResolvedInput = input;
    const addStep = (model: ModelId, modelRequest: ModelRequest) => {
      const reuse = mayReuse(item.cache, null, modelDefinition(model).deterministic);
      const row = rowFor(caller, item, { model, modelRequest, render, input: stepInput, references: [], mayReuse: reuse }, partMeta);
      ties.push(tiesOf(row, stepInput, reuse, { of: composite.id, index: rows.length - 1 })!);
      rows.push(row);
      // The next step starts from this one's output, once it exists.
      stepInput = { kind: 'awaiting', from: { generationId: row.id, output: 0 } };
    };
    if (upscaler) addStep(upscaler, modelRequestOf(item, 'upscale', { scale, outputs: 1 }));
    addStep(remover, modelRequestOf(item, 'remove-background', { outputs: 1 }));
    return { primary: composite, rows, ties };
  }

  return { resolveInputs, plan };
}

export type GenerationPlanner = ReturnType<typeof createGenerationPlanner>;
