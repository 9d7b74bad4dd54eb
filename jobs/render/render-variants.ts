// Turns one provider image into per-platform variants with sharp: decode once, then encode
// all variants in parallel (libuv's thread pool bounds the real parallelism).
import { createHash } from 'node:crypto';
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { CropStrategy, ImageFormat, VariantSpec } from './presets.ts';

export interface RenderLimits {
  /** Refuse sources above this many pixels before decoding them. */
  maxInputPixels: number;
  timeoutSeconds: number;
}

export interface RenderedImage {
  platform: string | null;
  format: ImageFormat;
  width: number;
  height: number;
  bytes: Buffer;
  contentHash: string;
}

/**
 * Formats we accept from the provider (and as image sources), told by their first bytes.
 * Anything else (SVG, PDF, TIFF…) is refused before any decoder sees it, so a hostile file
 * never reaches libvips' less-travelled loaders. The first SNIFF_BYTES bytes are enough.
 */
export function sniffImageFormat(bytes: Uint8Array): 'png' | 'jpeg' | 'webp' | 'avif' | undefined {
  return sniff(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/** How many leading bytes sniffImageFormat looks at. */
export const SNIFF_BYTES = 12;

function sniff(bytes: Buffer): 'png' | 'jpeg' | 'webp' | 'avif' | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (bytes.toString('latin1', 4, 8) === 'ftyp' && ['avif', 'avis'].includes(bytes.toString('latin1', 8, 12))) return 'avif';
  return undefined;
}

export class UnusableImageError extends Error {
  override name = 'UnusableImageError';
}

export interface RenderResult {
  original: RenderedImage;
  variants: RenderedImage[];
}

export async function renderVariants(source: Buffer, specs: readonly VariantSpec[], crop: CropStrategy, limits: RenderLimits): Promise<RenderResult> {
  const sourceFormat = sniffImageFormat(source);
  if (!sourceFormat) throw new UnusableImageError('the provider returned a file that is not a PNG, JPEG, WebP or AVIF image');
  const input = () => sharp(source, { limitInputPixels: limits.maxInputPixels, failOn: 'warning' }).timeout({ seconds: limits.timeoutSeconds });
  let metadata: Metadata;
  try {
    metadata = await input().metadata();
  } catch (cause) {
    throw new UnusableImageError(`the provider's image could not be read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (!metadata.width || !metadata.height || metadata.width * metadata.height > limits.maxInputPixels) {
    throw new UnusableImageError(`the provider's image is ${metadata.width}×${metadata.height}, over the pixel limit`);
  }

  const original: RenderedImage = {
    platform: null,
    format: sourceFormat,
    width: metadata.width,
    height: metadata.height,
    bytes: source,
    contentHash: sha256(source),
  };
  // A part of a composite renders no variants: its header was enough.
  if (specs.length === 0) return { original, variants: [] };

  // Decode once into raw pixels; every variant starts from that buffer.
  const decoded = await input().rotate().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const raw = { width: decoded.info.width, height: decoded.info.height, channels: decoded.info.channels };
  const hasAlpha = raw.channels === 4;

  const variants = await Promise.all(
    specs.map(async (spec) => {
      // JPEG has no alpha: what was transparent becomes white, as on a catalogue page (not black).
      const transparent = hasAlpha && spec.format !== 'jpeg';
      const resized = sharp(decoded.data, { raw })
        .timeout({ seconds: limits.timeoutSeconds })
        .resize(spec.width, spec.height, crop === 'pad' ? { fit: 'contain', background: transparent ? TRANSPARENT : WHITE } : { fit: 'cover', position: crop });
      const pipeline = hasAlpha && !transparent ? resized.flatten({ background: WHITE }) : resized;
      const bytes = await encode(pipeline, spec.format).toBuffer();
      return { platform: spec.platform, format: spec.format, width: spec.width, height: spec.height, bytes, contentHash: sha256(bytes) };
    }),
  );
  return { original, variants };
}

const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };
const TRANSPARENT = { r: 255, g: 255, b: 255, alpha: 0 };

function encode(pipeline: Sharp, format: ImageFormat): Sharp {
  switch (format) {
    case 'webp':
      return pipeline.webp({ quality: 80, effort: 4 });
    case 'avif':
      // The default effort (4) is ~30× slower for ~8% smaller files; 2 is the sweet spot.
      return pipeline.avif({ quality: 55, effort: 2 });
    case 'png':
      return pipeline.png({ compressionLevel: 8, adaptiveFiltering: true });
    case 'jpeg':
      return pipeline.jpeg({ quality: 82, mozjpeg: true });
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
