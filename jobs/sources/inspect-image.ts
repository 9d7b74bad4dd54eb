// What an image source is, told from its bytes before anything is stored: its format by the
// first bytes (PNG, JPEG, WebP, AVIF — render-variants' sniffer, so a source is what the
// renderer will take), then its size from the header sharp reads without decoding pixels, so a
// decompression bomb is refused for its pixel count before any worker decodes it.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { SourceFormat } from '../../db/schema.ts';
import { sniffImageFormat } from '../render/render-variants.ts';
import { SourceError } from './source-error.ts';

export interface ImageLimits {
  maxBytes: number;
  maxPixels: number;
}

export interface InspectedImage {
  format: SourceFormat;
  width: number;
  height: number;
  bytes: number;
  /** SHA-256 of the bytes, hex. */
  contentHash: string;
}

export async function inspectImage(bytes: Buffer, limits: ImageLimits): Promise<InspectedImage> {
  if (bytes.length > limits.maxBytes) throw new SourceError('too_large', `the image is ${bytes.length} bytes, over the ${limits.maxBytes}-byte limit`);
  const format = sniffImageFormat(bytes);
  if (!format) throw new SourceError('not_an_image', 'not a PNG, JPEG, WebP or AVIF image (told from its bytes; SVG, GIF, TIFF and others are not accepted)');
  let width: number | undefined;
  let height: number | undefined;
  try {
    // Header only: no pixels are decoded here, so the pixel check below comes before any decode.
    ({ width, height } = await sharp(bytes, { failOn: 'warning', limitInputPixels: false }).metadata());
  } catch (cause) {
    throw new SourceError('unreadable_image', `the ${format.toUpperCase()} image cannot be read; it may be truncated or corrupt`, { cause });
  }
  if (!width || !height) throw new SourceError('unreadable_image', `the ${format.toUpperCase()} image has no readable size`);
  if (width * height > limits.maxPixels) {
    throw new SourceError('too_many_pixels', `the image is ${width}×${height} (${formatMegapixels(width * height)}), over the ${formatMegapixels(limits.maxPixels)} limit`);
  }
  return { format, width, height, bytes: bytes.length, contentHash: createHash('sha256').update(bytes).digest('hex') };
}

const formatMegapixels = (pixels: number) => `${Math.round(pixels / 100_000) / 10} megapixels`;
