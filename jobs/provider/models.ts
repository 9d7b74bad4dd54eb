// The models Kiln routes to: how Replicate addresses each, what it costs there, which tenant
// tiers may use it, and how a Kiln request becomes its input. The one model table.
import type { TenantTier } from '../../db/schema.ts';

export const MODEL_TIERS = ['fast', 'balanced', 'quality'] as const;
export type ModelTier = (typeof MODEL_TIERS)[number];

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

/** What one prediction costs at the provider, as Replicate bills the model: per image, or per second of GPU time. */
export type ModelPrice =
  | { per: 'image'; usd: number }
  /** A generation reserves `reserveSeconds` of GPU time and is charged the time it took, never more. */
  | { per: 'gpu-second'; usd: number; hardware: string; reserveSeconds: number };

interface ModelDefinition {
  /** How Replicate addresses it: official models by name, community models by version. */
  route: { model: `${string}/${string}` } | { version: string };
  /** What a request's `tier` (fast, balanced, quality) picks. */
  tier: ModelTier;
  price: ModelPrice;
  /** The tenant tiers that may use it. */
  tenantTiers: readonly TenantTier[];
  buildInput(request: ModelRequest): Record<string, unknown>;
}

export interface ModelRequest {
  prompt: string;
  negativePrompt: string | null;
  aspectRatio: AspectRatio;
  seed: number | null;
}

/** The source image is requested lossless: every variant is encoded from it. */
const fluxInput = (request: ModelRequest): Record<string, unknown> => ({
  prompt: request.prompt,
  aspect_ratio: request.aspectRatio,
  output_format: 'png',
  num_outputs: 1,
  ...(request.seed === null ? {} : { seed: request.seed }),
});

export const MODELS = {
  'black-forest-labs/flux-schnell': {
    route: { model: 'black-forest-labs/flux-schnell' },
    tier: 'fast',
    price: { per: 'image', usd: 0.003 },
    tenantTiers: ['free', 'standard', 'pro'],
    buildInput: fluxInput,
  },
  'stability-ai/sdxl': {
    route: { version: '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc' },
    tier: 'balanced',
    // Replicate's L40S rate; an image takes about 4–5 s (≈ $0.004–0.005).
    price: { per: 'gpu-second', usd: 0.000975, hardware: 'L40S', reserveSeconds: 10 },
    tenantTiers: ['standard', 'pro'],
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
        ...(request.seed === null ? {} : { seed: request.seed }),
      };
    },
  },
  'black-forest-labs/flux-dev': {
    route: { model: 'black-forest-labs/flux-dev' },
    tier: 'quality',
    price: { per: 'image', usd: 0.025 },
    tenantTiers: ['pro'],
    buildInput: fluxInput,
  },
} as const satisfies Record<string, ModelDefinition>;

export type ModelId = keyof typeof MODELS;
export const MODEL_IDS = Object.keys(MODELS) as [ModelId, ...ModelId[]];

export function modelForTier(tier: ModelTier): ModelId {
  const found = MODEL_IDS.find((id) => MODELS[id].tier === tier);
  return found ?? 'black-forest-labs/flux-schnell';
}

export function isModelId(value: string): value is ModelId {
  return Object.hasOwn(MODELS, value);
}

/** Whether a tenant of `tenantTier` may use the model. */
export function mayUse(model: ModelId, tenantTier: string): boolean {
  return (MODELS[model].tenantTiers as readonly string[]).includes(tenantTier);
}

/** The models a tenant of `tenantTier` may use, in the table's order. */
export function modelsForTenantTier(tenantTier: string): ModelId[] {
  return MODEL_IDS.filter((id) => mayUse(id, tenantTier));
}
