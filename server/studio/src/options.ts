// What the form offers. The lists are the API's own vocabulary, checked against the client's
// input types at compile time, so a value the server does not take cannot be offered.
import type { KilnInputs } from '../../../client-sdk/index.ts';

type Item = KilnInputs['batch']['items'][number];
type Platform = NonNullable<Item['platforms']>[number];
type Format = NonNullable<Item['formats']>[number];
type Tier = NonNullable<Item['tier']>;
type AspectRatio = NonNullable<Extract<Item, { aspectRatio?: unknown }>['aspectRatio']>;
/** Every value of T is in the list. */
type Covers<T, List extends readonly T[]> = [T] extends [List[number]] ? true : never;

export const PLATFORMS = [
  { id: 'instagram-post', label: 'Instagram post' },
  { id: 'instagram-story', label: 'Instagram story' },
  { id: 'x-post', label: 'X post' },
  { id: 'linkedin-post', label: 'LinkedIn post' },
  { id: 'youtube-thumbnail', label: 'YouTube thumbnail' },
  { id: 'banner', label: 'Banner' },
  { id: 'thumbnail', label: 'Thumbnail' },
] as const satisfies readonly { id: Platform; label: string }[];
export const allPlatformsListed: Covers<Platform, (typeof PLATFORMS)[number]['id'][]> = true;

export const FORMATS = ['webp', 'avif', 'png', 'jpeg'] as const satisfies readonly Format[];
export const allFormatsListed: Covers<Format, (typeof FORMATS)[number][]> = true;

export const TIERS = ['fast', 'balanced', 'quality'] as const satisfies readonly Tier[];
export const ASPECT_RATIOS = ['1:1', '16:9', '3:2', '4:5', '2:3', '9:16', '4:3', '3:4', '5:4', '21:9', '9:21'] as const satisfies readonly AspectRatio[];
export const allAspectRatiosListed: Covers<AspectRatio, (typeof ASPECT_RATIOS)[number][]> = true;

export type ImageOperationId = Exclude<Item['operation'], 'text-to-image' | undefined>;

/** What an operation on a photo asks of the form; adding an operation is one entry here. */
export interface OperationChoice {
  id: ImageOperationId;
  label: string;
  hint: string;
  prompt: 'required' | 'none';
  /** Upscale: ×2 or ×4. */
  scale?: true;
  /** Image-to-image: how far from the source, 0–1. */
  strength?: true;
  seed?: true;
  /** Optimise: white or transparent behind the product; it picks its steps' models, so no model is sent. */
  background?: true;
}

export const OPERATIONS: readonly OperationChoice[] = [
  { id: 'upscale', label: 'Upscale', hint: 'every edge ×2 or ×4', prompt: 'none', scale: true },
  { id: 'remove-background', label: 'Remove background', hint: 'transparent PNG and WebP', prompt: 'none' },
  { id: 'edit', label: 'Edit', hint: 'change it as the prompt says', prompt: 'required', seed: true },
  { id: 'image-to-image', label: 'Image to image', hint: 'the prompt drawn over the photo', prompt: 'required', strength: true, seed: true },
  { id: 'optimize', label: 'Optimise for a catalogue', hint: 'upscaled when small, background removed, framed and padded', prompt: 'none', background: true },
];

export const operationLabel = (operation: string): string =>
  operation === 'text-to-image' ? 'Prompt' : (OPERATIONS.find((choice) => choice.id === operation)?.label ?? operation);
