import sharp from 'sharp';
import { inputUrls, outputSize, type ImageOperation, type PreparedImage } from './image-operations.ts';
import { loadInputBytes, type InputFetchOptions } from './input-fetch.ts';
import type { InputStore } from './input-store.ts';
import type { GenerationParams } from './validation.ts';

// A prediction's input images, made ready when the prediction starts: each fetched, decoded once to be
// sure it is a picture the model can read (JPEG, PNG, GIF or WebP, as Replicate's models accept),
// checked against the pixel limit (its own and its output's), and stored by content. Any failure
// is the message the prediction fails with.

export type Preparation = { ok: true; prepared: PreparedImage } | { ok: false; error: string };

/** An input image fetched and decoded: its bytes and its size. */
interface Loaded {
  readonly ok: true;
  readonly bytes: Buffer;
  readonly size: { readonly width: number; readonly height: number };
}

export interface InputImageOptions extends InputFetchOptions {
  /** Largest input and output, in pixels. */
  readonly maxPixels: number;
}

/** The formats Replicate's image models document ("Must be jpeg, png, gif, or webp"). */
const READABLE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'gif', 'webp']);
/** A decode that takes longer than this fails (libvips' own timeout). */
const DECODE_TIMEOUT_SECONDS = 30;

export class InputImages {
  readonly #store: InputStore;
  readonly #options: InputImageOptions;
  readonly #stopping = new AbortController();

  constructor(store: InputStore, options: InputImageOptions) {
    this.#store = store;
    this.#options = options;
  }

  async prepare(operation: ImageOperation, params: GenerationParams): Promise<Preparation> {
    const inputs = inputUrls(operation);
    if (inputs.some((input) => input.url === null)) return { ok: false, error: 'Either image or image_url must be provided.' };
    // Every input image at once; the first that cannot be used (in input order) fails the run.
    const loaded = await Promise.all(inputs.map((input) => this.#load(input.field, input.url ?? '')));
    const images: Loaded[] = [];
    for (const one of loaded) {
      if (!one.ok) return one;
      images.push(one);
    }
    const [first, ...others] = images;
    if (first === undefined) return { ok: false, error: `Could not use input.${operation.field}: no image given` };
    const fail = (reason: string): Preparation => ({ ok: false, error: `Could not use input.${operation.field}: ${reason}` });
    const { maxPixels } = this.#options;
    const output = outputSize(operation, first.size, params);
    if (output.width < 1 || output.height < 1) return fail(`the output would be ${output.width}x${output.height} pixels`);
    if (output.width * output.height > maxPixels) return fail(`the output would be ${output.width}x${output.height}, more than ${maxPixels} pixels`);
    const [sha256 = '', ...rest] = await Promise.all(images.map((image) => this.#store.put(image.bytes)));
    return { ok: true, prepared: { sha256, width: output.width, height: output.height, ...(others.length > 0 ? { others: rest } : {}) } };
  }

  /** One input image fetched and decoded once; the error names its field. */
  async #load(field: string, url: string): Promise<Loaded | { ok: false; error: string }> {
    const fail = (reason: string) => ({ ok: false as const, error: `Could not use input.${field}: ${reason}` });
    const loaded = await loadInputBytes(url, { ...this.#options, signal: this.#stopping.signal });
    if (!loaded.ok) return fail(loaded.error);
    const { maxPixels } = this.#options;
    try {
      const image = sharp(loaded.bytes, { failOn: 'warning', limitInputPixels: maxPixels }).timeout({ seconds: DECODE_TIMEOUT_SECONDS });
      const { format } = await image.metadata();
      if (!READABLE_FORMATS.has(format)) return fail(`not a JPEG, PNG, GIF or WebP image (${format})`);
      const { info } = await image.raw().toBuffer({ resolveWithObject: true });
      return { ok: true, bytes: loaded.bytes, size: { width: info.width, height: info.height } };
    } catch (error) {
      const reason = error instanceof Error ? error.message.trim() : String(error);
      return fail(/pixel limit/i.test(reason) ? `the image has more than ${maxPixels} pixels` : `not a readable image (${reason})`);
    }
  }

  /** Abandons the downloads under way (their predictions fetch again after a restart). */
  stop(): void {
    this.#stopping.abort();
  }
}
