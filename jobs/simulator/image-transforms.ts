import { createHash } from 'node:crypto';
import sharp, { type Sharp } from 'sharp';
import { encodeImage, escapeXml, placeholderImage, stripInvalidXmlChars, wrapText, type PictureSpec } from './images.ts';
import type { OutputFormat } from './validation.ts';

// What the simulator's image models really do to their input, with sharp, deterministically: the
// same input bytes and parameters always give the same output bytes. They stand in for the real
// models closely enough for tests to check pixels: an upscale has the promised size, a background
// removal an alpha channel, an edit visibly differs from its input, img2img follows its strength.

interface Size {
  readonly width: number;
  readonly height: number;
}

/** Colour distance (0–441 in RGB) within which a pixel counts as the background's colour. */
const BACKGROUND_TOLERANCE = 48;
/** How strongly an edit tints the picture, so even a grey input visibly changes. */
const EDIT_TINT_OPACITY = 0.25;

/** Reads the input once; animated inputs give their first frame. */
function decode(input: Buffer): Sharp {
  return sharp(input, { failOn: 'warning' });
}

/** real-esrgan: Lanczos to the output size (every edge × scale); alpha is kept, PNG out. */
export function upscale(input: Buffer, size: Size): Promise<Buffer> {
  return decode(input).resize(size.width, size.height, { fit: 'fill', kernel: 'lanczos3' }).png().toBuffer();
}

/** recraft-crisp-upscale: Lanczos ×2, then opaque (alpha flattened onto white), WebP out. */
export function crispUpscale(input: Buffer, size: Size, quality: number): Promise<Buffer> {
  return decode(input).resize(size.width, size.height, { fit: 'fill', kernel: 'lanczos3' }).flatten({ background: '#ffffff' }).webp({ quality }).toBuffer();
}

/**
 * bria/remove-background: the background is what can be reached from the image's edges through
 * pixels close to the border's typical colour (per-channel median) or already transparent; it
 * becomes fully transparent. The rest keeps its input alpha with preserveAlpha, else is opaque.
 * PNG with an alpha channel out.
 */
export async function removeBackground(input: Buffer, preserveAlpha: boolean): Promise<Buffer> {
  const { data, info } = await decode(input).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const background = borderMedian(data, width, height);
  const limit = BACKGROUND_TOLERANCE * BACKGROUND_TOLERANCE;
  const isBackground = (pixel: number): boolean => {
    const at = pixel * 4;
    if (data[at + 3] === 0) return true;
    const dr = (data[at] ?? 0) - background[0];
    const dg = (data[at + 1] ?? 0) - background[1];
    const db = (data[at + 2] ?? 0) - background[2];
    return dr * dr + dg * dg + db * db <= limit;
  };
  const removed = new Uint8Array(width * height);
  const stack: number[] = [];
  const visit = (pixel: number): void => {
    if (removed[pixel] === 0 && isBackground(pixel)) {
      removed[pixel] = 1;
      stack.push(pixel);
    }
  };
  for (let x = 0; x < width; x++) {
    visit(x);
    visit((height - 1) * width + x);
  }
  for (let y = 0; y < height; y++) {
    visit(y * width);
    visit(y * width + width - 1);
  }
  for (let pixel = stack.pop(); pixel !== undefined; pixel = stack.pop()) {
    const x = pixel % width;
    if (x > 0) visit(pixel - 1);
    if (x < width - 1) visit(pixel + 1);
    if (pixel >= width) visit(pixel - width);
    if (pixel < width * (height - 1)) visit(pixel + width);
  }
  for (let pixel = 0; pixel < width * height; pixel++) {
    const at = pixel * 4 + 3;
    data[at] = removed[pixel] === 1 ? 0 : preserveAlpha ? (data[at] ?? 255) : 255;
  }
  return sharp(data, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

function borderMedian(data: Buffer, width: number, height: number): [number, number, number] {
  const channels: [number[], number[], number[]] = [[], [], []];
  const add = (x: number, y: number): void => {
    const at = (y * width + x) * 4;
    for (let c = 0; c < 3; c++) channels[c]?.push(data[at + c] ?? 0);
  };
  for (let x = 0; x < width; x++) {
    add(x, 0);
    add(x, height - 1);
  }
  for (let y = 1; y < height - 1; y++) {
    add(0, y);
    add(width - 1, y);
  }
  const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  return [median(channels[0]), median(channels[1]), median(channels[2])];
}

export interface EditSpec extends Size {
  readonly prompt: string;
  readonly seed: number;
  readonly format: OutputFormat;
  readonly quality: number;
}

/**
 * flux-kontext-pro: the input (cropped to the output size when another aspect ratio is asked for)
 * with its hues rotated and a tint, both drawn from the prompt and seed, and the prompt written in a
 * caption band — a change anyone can see, even on a grey input.
 */
export function edit(input: Buffer, spec: EditSpec): Promise<Buffer> {
  const digest = createHash('sha256').update(JSON.stringify([spec.prompt, spec.seed])).digest();
  // 90–269°: never close to no change at all.
  const hue = 90 + ((digest[0] ?? 0) * 256 + (digest[1] ?? 0)) % 180;
  const tint = `hsl(${Math.round(((digest[2] ?? 0) / 256) * 360)},80%,50%)`;
  const { width, height } = spec;
  const overlay = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="${width}" height="${height}" fill="${tint}" fill-opacity="${EDIT_TINT_OPACITY}"/>${captionBand(spec, spec.prompt)}</svg>`,
  );
  const image = decode(input)
    .resize(width, height, { fit: 'cover' })
    .flatten({ background: '#ffffff' })
    .modulate({ hue })
    .composite([{ input: overlay, top: 0, left: 0 }]);
  return encodeImage(image, spec.format, spec.quality);
}

/** A dark band along the bottom with the text in it, as SVG elements. */
function captionBand({ width, height }: Size, text: string): string {
  const fontSize = Math.max(10, Math.round(Math.min(width, height) / 20));
  const lines = wrapText(stripInvalidXmlChars(text), Math.max(8, Math.floor((width * 0.9) / (fontSize * 0.6))), 3);
  const lineHeight = Math.round(fontSize * 1.3);
  const bandHeight = Math.min(height, Math.max(1, lines.length) * lineHeight + fontSize);
  const top = height - bandHeight;
  const left = Math.round(width * 0.05);
  const texts = lines.map((line, i) => `<text x="${left}" y="${top + fontSize * 1.2 + i * lineHeight}">${escapeXml(line)}</text>`).join('');
  return (
    `<rect x="0" y="${top}" width="${width}" height="${bandHeight}" fill="#000" fill-opacity="0.55"/>` +
    `<g font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="${fontSize}" fill="#fff">${texts}</g>`
  );
}

export interface BlendSpec {
  /** The picture text-to-image would make for the same prompt, seed, output index and size. */
  readonly generated: PictureSpec;
  /** 0: the input as it is; 1: the generated picture alone. */
  readonly strength: number;
  readonly format: OutputFormat;
  readonly quality: number;
}

/** flux-dev img2img: per pixel, input × (1 − strength) + generated × strength, at the output size. */
export async function blend(input: Buffer, spec: BlendSpec): Promise<Buffer> {
  const { width, height } = spec.generated;
  const [source, generated] = await Promise.all([
    decode(input).resize(width, height, { fit: 'cover' }).flatten({ background: '#000' }).removeAlpha().raw().toBuffer(),
    placeholderImage(spec.generated).removeAlpha().raw().toBuffer(),
  ]);
  const mixed = Buffer.alloc(source.length);
  const keep = 1 - spec.strength;
  for (let i = 0; i < mixed.length; i++) mixed[i] = Math.round((source[i] ?? 0) * keep + (generated[i] ?? 0) * spec.strength);
  return encodeImage(sharp(mixed, { raw: { width, height, channels: 3 } }), spec.format, spec.quality);
}

/** Share of a nano-banana picture's height that its strip of input tiles takes, along the bottom. */
export const COMPOSE_STRIP_SHARE = 0.25;

export interface ComposeSpec {
  /** The picture text-to-image would make for the same prompt, seed, output index and size. */
  readonly generated: PictureSpec;
  /** The first image is the picture (an edit); otherwise the generated picture is, and every image a tile. */
  readonly matchInput: boolean;
  readonly format: OutputFormat;
  readonly quality: number;
}

/**
 * nano-banana: the picture (the first input image cropped to the output size, or the prompt's
 * picture) with a strip along the bottom, a quarter of its height, of the other input images side
 * by side in input order — each tile `width / tiles` wide, the image cropped to fill it — so every
 * input image shows in known pixels.
 */
export async function compose(images: readonly Buffer[], spec: ComposeSpec): Promise<Buffer> {
  const { width, height } = spec.generated;
  const [first, ...rest] = images;
  const picture = spec.matchInput && first !== undefined ? decode(first).resize(width, height, { fit: 'cover' }).flatten({ background: '#ffffff' }) : placeholderImage(spec.generated);
  // A picture narrower than its tiles shows as many as fit, one pixel each.
  const tiles = (spec.matchInput ? rest : images).slice(0, width);
  if (tiles.length === 0) return encodeImage(picture, spec.format, spec.quality);
  const stripHeight = Math.max(1, Math.round(height * COMPOSE_STRIP_SHARE));
  const tileWidth = Math.floor(width / tiles.length);
  const layers = await Promise.all(
    tiles.map(async (tile, index) => ({
      input: await decode(tile).resize(tileWidth, stripHeight, { fit: 'cover' }).flatten({ background: '#ffffff' }).png().toBuffer(),
      left: index * tileWidth,
      top: height - stripHeight,
    })),
  );
  // Flattened first, so the strip is drawn on the finished picture.
  const flat = await picture.removeAlpha().png().toBuffer();
  return encodeImage(sharp(flat).composite(layers), spec.format, spec.quality);
}
