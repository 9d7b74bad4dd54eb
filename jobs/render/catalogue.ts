// The product-photo optimiser's own step, after the paid ones (upscale, background removal):
// frame the cut-out product for a catalogue. Its transparent margins are trimmed so every product
// fills its frame alike, an even margin is added back, and it is laid on white or kept
// transparent. The variants then pad it to each platform's shape (crop 'pad').
import sharp, { type OutputInfo } from 'sharp';
import { UnusableImageError, type RenderLimits } from './render-variants.ts';

export const CATALOGUE_BACKGROUNDS = ['white', 'transparent'] as const;
export type CatalogueBackground = (typeof CATALOGUE_BACKGROUNDS)[number];

export interface CatalogueFraming {
  background: CatalogueBackground;
  /** The margin around the product, as a share of its longer edge. */
  marginShare: number;
}

const CLEAR = { r: 255, g: 255, b: 255, alpha: 0 };

/** A lossless PNG of the framed product. Raw pixels between the steps: one decode, one encode. */
export async function frameForCatalogue(image: Buffer, framing: CatalogueFraming, limits: RenderLimits): Promise<Buffer> {
  const input = () => sharp(image, { limitInputPixels: limits.maxInputPixels, failOn: 'warning' }).timeout({ seconds: limits.timeoutSeconds });
  let trimmed: { data: Buffer; info: OutputInfo };
  try {
    // Trim what is (nearly) fully transparent; an image with nothing to trim comes back whole.
    trimmed = await input().ensureAlpha().trim({ background: CLEAR, threshold: 10 }).raw().toBuffer({ resolveWithObject: true });
  } catch (cause) {
    // libvips cannot trim an image that is all background: frame it whole.
    if (!(cause instanceof Error) || !/trim|bounding box/i.test(cause.message)) throw new UnusableImageError(`the cut-out could not be read: ${String(cause)}`, { cause });
    trimmed = await input().ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  }
  const raw = (info: OutputInfo) => ({ raw: { width: info.width, height: info.height, channels: info.channels } });
  const margin = Math.round(Math.max(trimmed.info.width, trimmed.info.height) * framing.marginShare);
  const framed = await sharp(trimmed.data, raw(trimmed.info)).extend({ top: margin, bottom: margin, left: margin, right: margin, background: CLEAR }).raw().toBuffer({ resolveWithObject: true });
  // A pipeline of its own: sharp flattens before it extends, whatever the order of the calls.
  const laid = sharp(framed.data, raw(framed.info));
  return (framing.background === 'white' ? laid.flatten({ background: '#ffffff' }) : laid).png({ compressionLevel: 8, adaptiveFiltering: true }).toBuffer();
}
