// How a generation ends when it does not succeed, and the stored request as the worker reads it.
import { z } from 'zod';
import { transition } from '../../db/generations.ts';
import type { Db } from '../../db/schema.ts';
import { SOURCE_FORMATS } from '../../db/schema.ts';
import { ASPECT_RATIOS, OPERATIONS, UPSCALE_FACTORS, type ModelRequest } from '../provider/models.ts';
import { CATALOGUE_BACKGROUNDS } from '../render/catalogue.ts';
import { CROP_STRATEGIES, IMAGE_FORMATS, PLATFORMS } from '../render/presets.ts';

/** Why a generation failed, as stored and shown to clients. */
export type FailureCode =
  | 'provider_failed'
  | 'provider_rejected'
  | 'provider_unavailable'
  | 'provider_canceled'
  | 'deadline_exceeded'
  | 'prediction_timeout'
  | 'unusable_output'
  /** The image it starts from is gone from the store or cannot be decoded (input-files.ts): nothing was sent. */
  | 'unusable_source'
  /** The generation it builds on (its chain parent, or an earlier step) failed or was canceled: nothing was sent (migration 0023). */
  | 'input_failed'
  /** Only when work it was to be served from is gone and its own would cost more than the balance holds (copy-phase.ts). */
  | 'insufficient_credit'
  | 'internal_error';

/** Ends the generation as failed; with `attempt`, only if that attempt still owns it. */
export async function failGeneration(db: Db, id: string, attempt: number | undefined, code: FailureCode, message: string): Promise<void> {
  await transition(db, {
    id,
    ...(attempt === undefined ? {} : { attempt }),
    fromStates: ['queued', 'running'],
    set: { state: 'failed', finished_at: new Date(), error_code: code, error_message: message },
    stage: 'failed',
    data: { code, message },
  });
}

/** An input image: a source, or a generation's output (a chain, a composite's earlier step). */
const inputImage = z.intersection(
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('source'), sourceId: z.string() }),
    z.object({ kind: z.literal('generation'), generationId: z.string(), outputIndex: z.int().min(0) }),
  ]),
  z.object({ contentHash: z.string().regex(/^[0-9a-f]{64}$/), storageKey: z.string(), format: z.enum(SOURCE_FORMATS), bytes: z.int().optional() }),
);

/** The request as the API stored it; parsed rather than trusted, since it crossed a database. */
export const storedRequest = z.object({
  platforms: z.array(z.enum(PLATFORMS)),
  customSizes: z.array(z.object({ width: z.int().positive(), height: z.int().positive() })),
  formats: z.array(z.enum(IMAGE_FORMATS)),
  crop: z.enum(CROP_STRATEGIES),
  aspectRatio: z.enum(ASPECT_RATIOS),
  seed: z.int().nullable(),
  negativePrompt: z.string().nullable(),
  // Rows from before image operations have none of these: text-to-image.
  operation: z.enum(OPERATIONS).default('text-to-image'),
  input: inputImage.nullable().default(null),
  strength: z.number().min(0).max(1).nullable().default(null),
  scale: z.literal(UPSCALE_FACTORS).nullable().default(null),
  outputs: z.int().min(1).default(1),
  references: z.array(inputImage).default([]),
  /** The optimiser's framing (operation 'optimize' only). */
  optimize: z.object({ background: z.enum(CATALOGUE_BACKGROUNDS), targetShortEdge: z.int().positive() }).nullable().default(null),
});
export type StoredRequest = z.output<typeof storedRequest>;

/** What the model is asked, from the stored request: the create phase's input, and a fingerprint's. */
export function modelRequestOf(prompt: string, request: StoredRequest): ModelRequest {
  const { operation, negativePrompt, aspectRatio, seed, strength, scale, outputs } = request;
  return { operation, prompt, negativePrompt, aspectRatio, seed, strength, scale, outputs };
}
