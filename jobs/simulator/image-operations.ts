import { dimensionsForArea } from './sizes.ts';

// What an image model does with its input image, as validation reads it from the input: the
// operation, the URL to fetch when the prediction starts, and the parameters that shape the
// output. Kept with the prediction (and in the journal), so outputs can be rendered again later.

export type ImageOperation =
  /** flux-dev img2img: the input blended with the generated picture, by prompt_strength. */
  | { readonly kind: 'img2img'; readonly field: string; readonly url: string; readonly strength: number }
  /** flux-kontext-pro: a visible, deterministic change of the input; `matchInput` keeps its size. */
  | { readonly kind: 'edit'; readonly field: string; readonly url: string; readonly matchInput: boolean }
  /** real-esrgan: every edge times `scale`. */
  | { readonly kind: 'upscale'; readonly field: string; readonly url: string; readonly scale: number }
  /** recraft-crisp-upscale: every edge doubled, alpha dropped. */
  | { readonly kind: 'crisp-upscale'; readonly field: string; readonly url: string }
  /** bria/remove-background: the background made transparent. url null: neither image nor image_url was given. */
  | { readonly kind: 'remove-background'; readonly field: string; readonly url: string | null; readonly preserveAlpha: boolean }
  /**
   * nano-banana: its image_input (one or more) shown in the picture. `matchInput` (aspect_ratio
   * match_input_image): the first image is the picture and the others are its strip of tiles;
   * otherwise the picture is drawn from the prompt at the asked ratio and every image is a tile.
   */
  | { readonly kind: 'compose'; readonly field: string; readonly urls: readonly string[]; readonly matchInput: boolean };

export const IMAGE_OPERATION_KINDS = ['img2img', 'edit', 'upscale', 'crisp-upscale', 'remove-background', 'compose'] as const satisfies readonly ImageOperation['kind'][];

/** Every input image the operation reads, in order, with the input field it came from (as error messages name it). */
export function inputUrls(operation: ImageOperation): { field: string; url: string | null }[] {
  if (operation.kind === 'compose') return operation.urls.map((url, index) => ({ field: `${operation.field}.${index}`, url }));
  return [{ field: operation.field, url: operation.url }];
}

/** Recraft does not publish its factor; the simulator doubles, the usual "crisp" upscale. */
export const CRISP_UPSCALE_FACTOR = 2;

/** The input image once fetched: its bytes by content address, and the size of the output it makes. */
export interface PreparedImage {
  readonly sha256: string;
  readonly width: number;
  readonly height: number;
  /** The input images after the first (nano-banana's image_input), by content address, in order. */
  readonly others?: readonly string[];
}

interface Size {
  readonly width: number;
  readonly height: number;
}

/**
 * The output's size for an input of `input`'s size. `requested` is the size validation chose from
 * the input's other fields (aspect ratio, megapixels), which some operations follow.
 */
export function outputSize(operation: ImageOperation, input: Size, requested: Size): Size {
  switch (operation.kind) {
    case 'img2img':
      // "The aspect ratio of your output will match this image", at the requested megapixels.
      return dimensionsForArea(input.width / input.height, requested.width * requested.height);
    case 'edit':
    case 'compose':
      return operation.matchInput ? input : requested;
    case 'upscale':
      return { width: Math.round(input.width * operation.scale), height: Math.round(input.height * operation.scale) };
    case 'crisp-upscale':
      return { width: input.width * CRISP_UPSCALE_FACTOR, height: input.height * CRISP_UPSCALE_FACTOR };
    case 'remove-background':
      return input;
  }
}
