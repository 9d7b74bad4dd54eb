import type { ImageOperation } from './image-operations.ts';
import { blend, compose, crispUpscale, edit, removeBackground, upscale } from './image-transforms.ts';
import { renderImage, type ImageSpec } from './images.ts';
import type { InputStore } from './input-store.ts';
import type { OutputFormat } from './validation.ts';

// One output file of a prediction, described by everything its bytes depend on, and its rendering:
// text-to-image placeholders from the prompt alone, the image models' outputs from their stored
// input image. The description is also the render cache's key, so equal requests share a render.

export type OutputSpec =
  | { readonly kind: 'generated'; readonly image: ImageSpec }
  | {
      readonly kind: 'derived';
      readonly operation: ImageOperation;
      /** SHA-256 of the input image in the input store. */
      readonly input: string;
      /** The input images after the first (nano-banana), in order; absent: none. */
      readonly others?: readonly string[];
      readonly width: number;
      readonly height: number;
      readonly prompt: string;
      readonly seed: number;
      readonly index: number;
      readonly format: OutputFormat;
      readonly quality: number;
    };

export function formatOf(spec: OutputSpec): OutputFormat {
  return spec.kind === 'generated' ? spec.image.format : spec.format;
}

export async function renderOutput(spec: OutputSpec, inputs: InputStore): Promise<Buffer> {
  if (spec.kind === 'generated') return renderImage(spec.image);
  const stored = await Promise.all([spec.input, ...(spec.others ?? [])].map(async (sha256) => {
    const bytes = await inputs.get(sha256);
    if (bytes === undefined) throw new Error(`the input image ${sha256} is no longer stored`);
    return bytes;
  }));
  const [input = Buffer.alloc(0)] = stored;
  const { operation, width, height, prompt, seed, index, format, quality } = spec;
  switch (operation.kind) {
    case 'img2img':
      return blend(input, { generated: { prompt, seed, index, width, height }, strength: operation.strength, format, quality });
    case 'edit':
      return edit(input, { width, height, prompt, seed, format, quality });
    case 'upscale':
      return upscale(input, { width, height });
    case 'crisp-upscale':
      return crispUpscale(input, { width, height }, quality);
    case 'remove-background':
      return removeBackground(input, operation.preserveAlpha);
    case 'compose':
      return compose(stored, { generated: { prompt, seed, index, width, height }, matchInput: operation.matchInput, format, quality });
  }
}
