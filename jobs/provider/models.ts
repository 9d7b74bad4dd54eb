// The models Kiln routes to: how Replicate addresses each, what it costs there, which tenant
// tiers may use it, which operations it serves, and how a Kiln request becomes its input. The
// one model table.
import type { TenantTier } from '../../db/schema.ts';

/**
 * The tenant tiers, restated: this file's declarations reach the client-sdk's (through the API's
 * types), which must not reach db/ (kysely). Proven equal to db/schema.ts's below.
 */
export type TenantTierName = 'free' | 'standard' | 'pro';
type SameTiers = [TenantTierName] extends [TenantTier] ? ([TenantTier] extends [TenantTierName] ? true : false) : false;
true satisfies SameTiers;

export const MODEL_TIERS = ['fast', 'balanced', 'quality'] as const;
export type ModelTier = (typeof MODEL_TIERS)[number];

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

/**
 * What a generation does: make an image from a prompt, or start from an image source — edit it
 * by prompt, upscale it, remove its background, or redraw it from a prompt with a strength.
 */
export const OPERATIONS = ['text-to-image', 'edit', 'upscale', 'remove-background', 'image-to-image', 'optimize'] as const;
export type Operation = (typeof OPERATIONS)[number];
/** The operations that start from an image (they name a source). */
export type ImageOperation = Exclude<Operation, 'text-to-image'>;
/**
 * Operations no model does in one prediction: Kiln does them in steps, each an operation of its
 * own (the product-photo optimiser: upscale when needed, remove the background, then frame).
 */
export const COMPOSITE_OPERATIONS = ['optimize'] as const satisfies readonly Operation[];
export type ModelOperation = Exclude<Operation, (typeof COMPOSITE_OPERATIONS)[number]>;

/** Upscale factors a request may ask for; each upscaler says which of them it offers. */
export const UPSCALE_FACTORS = [2, 4] as const;
export type UpscaleFactor = (typeof UPSCALE_FACTORS)[number];

/** What one prediction costs at the provider, as Replicate bills the model: per image, or per second of GPU time. */
export type ModelPrice =
  | { per: 'image'; usd: number }
  /** A generation reserves `reserveSeconds` of GPU time and is charged the time it took, never more. */
  | { per: 'gpu-second'; usd: number; hardware: string; reserveSeconds: number };

export interface ModelDefinition {
  /** How Replicate addresses it: official models by name, community models by version. */
  route: { model: `${string}/${string}` } | { version: string };
  /** What a request's `tier` (fast, balanced, quality) picks among the models of its operation. */
  tier: ModelTier;
  price: ModelPrice;
  /** The tenant tiers that may use it. */
  tenantTiers: readonly TenantTierName[];
  /** What it is used for; a model may serve several (flux-dev: text-to-image and image-to-image). */
  operations: readonly ModelOperation[];
  /** Upscale factors it offers (upscalers only; empty otherwise). */
  scales: readonly UpscaleFactor[];
  /** Images one prediction can make (its `num_outputs`, up to 4); 1: it takes no num_outputs and makes one. */
  maxOutputs: number;
  /** Reference images it takes beside the prompt (and an edit's source); 0: none. */
  maxReferences: number;
  /** The text-to-image aspect ratios it offers; absent: all of ASPECT_RATIOS. */
  aspectRatios?: readonly AspectRatio[];
  /**
   * True when its output follows from its input alone (it takes no seed): a repeat of the same
   * request asks for the same image, so the cache may serve it without a seed.
   */
  deterministic: boolean;
  /**
   * The provider input. `image` is the input image as the provider should read it: a URL at
   * create time, or `sha256:<hex>` of its bytes when fingerprinting (cache-key.ts); null for
   * text-to-image. `references` are the reference images, in the request's order, named the same way.
   */
  buildInput(request: ModelRequest, image: string | null, references: readonly string[]): Record<string, unknown>;
}

export interface ModelRequest {
  operation: Operation;
  /** Empty for operations that take none (upscale, remove-background). */
  prompt: string;
  negativePrompt: string | null;
  aspectRatio: AspectRatio;
  seed: number | null;
  /** image-to-image: how far the result may move from the source, 0 (keep it) to 1 (ignore it). */
  strength: number | null;
  /** upscale: the factor of every edge. */
  scale: UpscaleFactor | null;
  /** Images asked of the one prediction (1–4; above 1 only for models with num_outputs). */
  outputs: number;
}

const seedOf = (request: ModelRequest) => (request.seed === null ? {} : { seed: request.seed });

/** The source image is requested lossless: every variant is encoded from it. */
const fluxInput = (request: ModelRequest): Record<string, unknown> => ({
  prompt: request.prompt,
  aspect_ratio: request.aspectRatio,
  output_format: 'png',
  num_outputs: request.outputs,
  ...seedOf(request),
});

/** flux-dev redraws an image with `prompt_strength`; the output keeps the image's aspect ratio, so none is sent. */
const fluxImageToImage = (request: ModelRequest, image: string | null): Record<string, unknown> => ({
  prompt: request.prompt,
  image,
  prompt_strength: request.strength ?? DEFAULT_STRENGTH,
  output_format: 'png',
  num_outputs: request.outputs,
  ...seedOf(request),
});

/**
 * Reference images a request may carry; a model that takes them takes this many (nano-banana's
 * image_input has room for an edit's source and all of them).
 */
export const MAX_REFERENCES = 4;

/**
 * nano-banana takes every image in one `image_input` list: an edit's source first, then the
 * references. An edit keeps its source's shape; text-to-image asks for its ratio. It takes no seed.
 */
const nanoBananaInput = (request: ModelRequest, image: string | null, references: readonly string[]): Record<string, unknown> => ({
  prompt: request.prompt,
  image_input: image === null ? [...references] : [image, ...references],
  aspect_ratio: request.operation === 'edit' ? 'match_input_image' : request.aspectRatio,
  output_format: 'png',
});

/** Replicate's default prompt_strength for flux-dev img2img. */
export const DEFAULT_STRENGTH = 0.8;

export const MODELS = {
  'black-forest-labs/flux-schnell': {
    route: { model: 'black-forest-labs/flux-schnell' },
    tier: 'fast',
    price: { per: 'image', usd: 0.003 },
    tenantTiers: ['free', 'standard', 'pro'],
    operations: ['text-to-image'],
    scales: [],
    maxOutputs: 4,
    maxReferences: 0,
    deterministic: false,
    buildInput: fluxInput,
  },
  'stability-ai/sdxl': {
    route: { version: '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc' },
    tier: 'balanced',
    // Replicate's L40S rate; an image takes about 4–5 s (≈ $0.004–0.005).
    price: { per: 'gpu-second', usd: 0.000975, hardware: 'L40S', reserveSeconds: 10 },
    tenantTiers: ['standard', 'pro'],
    operations: ['text-to-image'],
    scales: [],
    maxOutputs: 4,
    maxReferences: 0,
    deterministic: false,
    buildInput: (request) => {
      const [w = 1, h = 1] = request.aspectRatio.split(':').map(Number);
      // SDXL wants multiples of 8 near one megapixel.
      const scale = Math.sqrt((1024 * 1024) / (w * h));
      const round8 = (value: number) => Math.max(256, Math.min(1536, Math.round(value / 8) * 8));
      return {
        prompt: request.prompt,
        ...(request.negativePrompt ? { negative_prompt: request.negativePrompt } : {}),
        width: round8(w * scale),
        height: round8(h * scale),
        // Sent only when above its default (1), so a one-image request's input stays as it was.
        ...(request.outputs > 1 ? { num_outputs: request.outputs } : {}),
        ...seedOf(request),
      };
    },
  },
  'black-forest-labs/flux-dev': {
    route: { model: 'black-forest-labs/flux-dev' },
    tier: 'quality',
    price: { per: 'image', usd: 0.025 },
    tenantTiers: ['pro'],
    operations: ['text-to-image', 'image-to-image'],
    scales: [],
    maxOutputs: 4,
    maxReferences: 0,
    deterministic: false,
    buildInput: (request, image) => (request.operation === 'image-to-image' ? fluxImageToImage(request, image) : fluxInput(request)),
  },
  'black-forest-labs/flux-kontext-pro': {
    route: { model: 'black-forest-labs/flux-kontext-pro' },
    tier: 'quality',
    price: { per: 'image', usd: 0.04 },
    tenantTiers: ['standard', 'pro'],
    operations: ['edit'],
    scales: [],
    maxOutputs: 1,
    maxReferences: 0,
    deterministic: false,
    // match_input_image keeps the source's shape; 2 is the most permissive safety setting allowed with an input image.
    buildInput: (request, image) => ({
      prompt: request.prompt,
      input_image: image,
      aspect_ratio: 'match_input_image',
      output_format: 'png',
      safety_tolerance: 2,
      ...seedOf(request),
    }),
  },
  'nightmareai/real-esrgan': {
    route: { version: 'f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa' },
    tier: 'fast',
    // A community model billed by GPU time (Nvidia T4); a photo takes seconds, a large one at ×4 tens of seconds.
    price: { per: 'gpu-second', usd: 0.000225, hardware: 'T4', reserveSeconds: 30 },
    tenantTiers: ['free', 'standard', 'pro'],
    operations: ['upscale'],
    scales: [2, 4],
    maxOutputs: 1,
    maxReferences: 0,
    deterministic: true,
    buildInput: (request, image) => ({ image, scale: request.scale ?? 2 }),
  },
  'recraft-ai/recraft-crisp-upscale': {
    route: { model: 'recraft-ai/recraft-crisp-upscale' },
    tier: 'quality',
    price: { per: 'image', usd: 0.006 },
    tenantTiers: ['standard', 'pro'],
    operations: ['upscale'],
    // It takes no factor; it doubles (the simulator's choice, as Recraft publishes none).
    scales: [2],
    maxOutputs: 1,
    maxReferences: 0,
    deterministic: true,
    buildInput: (_request, image) => ({ image }),
  },
  'bria/remove-background': {
    route: { model: 'bria/remove-background' },
    tier: 'fast',
    price: { per: 'image', usd: 0.018 },
    tenantTiers: ['standard', 'pro'],
    operations: ['remove-background'],
    scales: [],
    maxOutputs: 1,
    maxReferences: 0,
    deterministic: true,
    buildInput: (_request, image) => ({ image, preserve_alpha: true }),
  },
  // Last, so that a tier's pick among models without references stays what it was.
  'google/nano-banana': {
    route: { model: 'google/nano-banana' },
    tier: 'balanced',
    price: { per: 'image', usd: 0.039 },
    tenantTiers: ['standard', 'pro'],
    operations: ['text-to-image', 'edit'],
    scales: [],
    maxOutputs: 1,
    maxReferences: MAX_REFERENCES,
    // Its aspect_ratio input has no 9:21.
    aspectRatios: ASPECT_RATIOS.filter((ratio) => ratio !== '9:21'),
    deterministic: false,
    buildInput: nanoBananaInput,
  },
} as const satisfies Record<string, ModelDefinition>;

export type ModelId = keyof typeof MODELS;
export const MODEL_IDS = Object.keys(MODELS) as [ModelId, ...ModelId[]];

/** A model's entry, typed as the table's rows are (not as its literal). */
export function modelDefinition(id: ModelId): ModelDefinition {
  return MODELS[id];
}

export function serves(model: ModelId, operation: Operation): boolean {
  return (modelDefinition(model).operations as readonly Operation[]).includes(operation);
}

/** The models that serve an operation, in the table's order. */
export function modelsFor(operation: Operation): ModelId[] {
  return MODEL_IDS.filter((id) => serves(id, operation));
}

/**
 * The model of that tier for the operation, among those `accepts` takes (an upscaler that offers
 * the scale asked for); without one of the tier, the operation's first.
 */
export function modelFor(operation: Operation, tier: ModelTier, accepts: (id: ModelId) => boolean = () => true): ModelId {
  const candidates = modelsFor(operation);
  const fitting = candidates.filter(accepts);
  return fitting.find((id) => MODELS[id].tier === tier) ?? fitting[0] ?? candidates[0] ?? 'black-forest-labs/flux-schnell';
}

/** Whether the model takes this many reference images (every model takes none). */
export function takesReferences(model: ModelId, count: number): boolean {
  return modelDefinition(model).maxReferences >= count;
}

/** Whether the model offers the aspect ratio for text-to-image. */
export function offersAspectRatio(model: ModelId, ratio: AspectRatio): boolean {
  return modelDefinition(model).aspectRatios?.includes(ratio) ?? true;
}

/** The text-to-image model a tier picks. */
export function modelForTier(tier: ModelTier): ModelId {
  return modelFor('text-to-image', tier);
}

export function isModelId(value: string): value is ModelId {
  return Object.hasOwn(MODELS, value);
}

/** Whether a tenant of `tenantTier` may use the model. */
export function mayUse(model: ModelId, tenantTier: string): boolean {
  return (MODELS[model].tenantTiers as readonly string[]).includes(tenantTier);
}

/** The models a tenant of `tenantTier` may use, in the table's order (of one operation, when given). */
/** The most outputs a request may ask of one prediction (num_outputs' range on Replicate). */
export const MAX_OUTPUTS = 4;

export function modelsForTenantTier(tenantTier: string, operation?: Operation): ModelId[] {
  return MODEL_IDS.filter((id) => mayUse(id, tenantTier) && (operation === undefined || serves(id, operation)));
}
