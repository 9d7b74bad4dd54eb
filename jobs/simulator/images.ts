import { createHash } from 'node:crypto';
import sharp, { type Sharp } from 'sharp';
import type { OutputFormat } from './validation.ts';

// Deterministic placeholder images: same (prompt, seed, index, size, format, quality) ⇒ the same
// bytes. Colours and shapes come from a SHA-256 of the inputs; the prompt is drawn on top so
// a person looking at a demo can tell which request produced which image.

export interface ImageSpec {
  readonly prompt: string;
  readonly seed: number;
  /** Position in a multi-output prediction; each output gets its own picture. */
  readonly index: number;
  readonly width: number;
  readonly height: number;
  readonly format: OutputFormat;
  readonly quality: number;
}

/** Reads successive bytes of a digest as numbers in [0, 1). */
class DigestStream {
  readonly #bytes: Buffer;
  #position = 0;

  constructor(seedText: string) {
    // 8 chained digests give 256 bytes, more than any picture needs.
    const parts: Buffer[] = [];
    let previous = createHash('sha256').update(seedText).digest();
    for (let i = 0; i < 8; i++) {
      parts.push(previous);
      previous = createHash('sha256').update(previous).digest();
    }
    this.#bytes = Buffer.concat(parts);
  }

  next(): number {
    const byte = this.#bytes[this.#position % this.#bytes.length] ?? 0;
    this.#position++;
    return byte / 256;
  }
}

function hsl(hue: number, saturation: number, lightness: number): string {
  return `hsl(${Math.round(hue)},${Math.round(saturation)}%,${Math.round(lightness)}%)`;
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

/** Drops characters XML 1.0 forbids (they would make librsvg reject the whole SVG). */
export function stripInvalidXmlChars(text: string): string {
  return text.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '');
}

/** Greedy word wrap; long words are split; at most maxLines lines, the last ends in "…" if cut. */
export function wrapText(text: string, maxChars: number, maxLines: number): string[] {
  const words = text.split(/\s+/).filter((w) => w !== '');
  const lines: string[] = [];
  let current = '';
  const pushWord = (word: string): void => {
    if (current === '') current = word;
    else if (current.length + 1 + word.length <= maxChars) current += ` ${word}`;
    else {
      lines.push(current);
      current = word;
    }
  };
  for (const word of words) {
    for (let i = 0; i < word.length; i += maxChars) pushWord(word.slice(i, i + maxChars));
  }
  if (current !== '') lines.push(current);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  const last = kept[maxLines - 1] ?? '';
  kept[maxLines - 1] = `${last.slice(0, Math.max(0, maxChars - 1))}…`;
  return kept;
}

/** What the picture depends on (the encoding aside). */
export type PictureSpec = Omit<ImageSpec, 'format' | 'quality'>;

export function buildSvg(spec: PictureSpec): string {
  const { width, height } = spec;
  const random = new DigestStream(JSON.stringify([spec.prompt, spec.seed, spec.index]));
  const baseHue = random.next() * 360;
  const from = hsl(baseHue, 55 + random.next() * 35, 30 + random.next() * 25);
  const to = hsl(baseHue + 90 + random.next() * 180, 55 + random.next() * 35, 45 + random.next() * 25);
  const angle = Math.round(random.next() * 360);
  const short = Math.min(width, height);

  const shapes: string[] = [];
  const shapeCount = 3 + Math.floor(random.next() * 4);
  for (let i = 0; i < shapeCount; i++) {
    const kind = Math.floor(random.next() * 3);
    const x = Math.round(random.next() * width);
    const y = Math.round(random.next() * height);
    const size = Math.round(short * (0.1 + random.next() * 0.35));
    const fill = hsl(baseHue + random.next() * 360, 60 + random.next() * 30, 40 + random.next() * 40);
    const opacity = (0.35 + random.next() * 0.45).toFixed(2);
    const rotation = Math.round(random.next() * 360);
    if (kind === 0) {
      shapes.push(`<circle cx="${x}" cy="${y}" r="${size}" fill="${fill}" fill-opacity="${opacity}"/>`);
    } else if (kind === 1) {
      shapes.push(
        `<rect x="${x - size}" y="${y - size / 2}" width="${size * 2}" height="${size}" rx="${Math.round(size / 8)}" fill="${fill}" fill-opacity="${opacity}" transform="rotate(${rotation} ${x} ${y})"/>`,
      );
    } else {
      const points = [0, 1, 2]
        .map((k) => {
          const a = ((rotation + k * 120) * Math.PI) / 180;
          return `${Math.round(x + size * Math.cos(a))},${Math.round(y + size * Math.sin(a))}`;
        })
        .join(' ');
      shapes.push(`<polygon points="${points}" fill="${fill}" fill-opacity="${opacity}"/>`);
    }
  }

  const fontSize = Math.max(10, Math.round(short / 20));
  const maxChars = Math.max(8, Math.floor((width * 0.9) / (fontSize * 0.6)));
  const lines = wrapText(stripInvalidXmlChars(spec.prompt), maxChars, 4);
  const lineHeight = Math.round(fontSize * 1.3);
  const captionSize = Math.max(8, Math.round(fontSize * 0.55));
  const bandHeight = lines.length * lineHeight + captionSize * 2 + fontSize;
  const bandTop = height - bandHeight;
  const left = Math.round(width * 0.05);
  const textLines = lines
    .map((line, i) => `<text x="${left}" y="${bandTop + fontSize * 1.2 + i * lineHeight}">${escapeXml(line)}</text>`)
    .join('');
  const caption = escapeXml(`seed ${spec.seed} · ${width}×${height} · kiln simulator`);

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<defs><linearGradient id="g" gradientTransform="rotate(${angle} 0.5 0.5)"><stop offset="0" stop-color="${from}"/><stop offset="1" stop-color="${to}"/></linearGradient></defs>`,
    `<rect width="${width}" height="${height}" fill="url(#g)"/>`,
    ...shapes,
    `<rect x="0" y="${bandTop}" width="${width}" height="${bandHeight}" fill="#000" fill-opacity="0.45"/>`,
    `<g font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="${fontSize}" fill="#fff">${textLines}</g>`,
    `<text x="${left}" y="${height - captionSize}" font-family="DejaVu Sans Mono, monospace" font-size="${captionSize}" fill="#fff" fill-opacity="0.8">${caption}</text>`,
    '</svg>',
  ].join('');
}

/** The placeholder picture as a sharp pipeline, opaque RGB like a model's output, not yet encoded. */
export function placeholderImage(spec: PictureSpec): Sharp {
  return sharp(Buffer.from(buildSvg(spec)), { density: 72 })
    .resize(spec.width, spec.height, { fit: 'fill' })
    .flatten({ background: '#000' });
}

/** Encodes as the prediction's output_format (quality 0 is read as 1, the lowest sharp takes). */
export function encodeImage(image: Sharp, format: OutputFormat, quality: number): Promise<Buffer> {
  switch (format) {
    case 'webp':
      return image.webp({ quality: Math.max(1, quality) }).toBuffer();
    case 'jpg':
      return image.jpeg({ quality: Math.max(1, quality) }).toBuffer();
    case 'png':
      return image.png().toBuffer();
  }
}

export async function renderImage(spec: ImageSpec): Promise<Buffer> {
  return encodeImage(placeholderImage(spec), spec.format, spec.quality);
}
