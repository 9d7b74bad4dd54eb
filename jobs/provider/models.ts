// The models Kiln routes to, and how a Kiln request becomes each model's input.

export const MODEL_TIERS = ['fast', 'balanced', 'quality'] as const;
export type ModelTier = (typeof MODEL_TIERS)[number];

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

interface ModelDefinition {
  /** How Replicate addresses it: official models by name, community models by version. */
  route: { model: `${string}/${string}` } | { version: string };
  tier: ModelTier;
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
    buildInput: fluxInput,
  },
  'stability-ai/sdxl': {
    route: { version: '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc' },
    tier: 'balanced',
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
