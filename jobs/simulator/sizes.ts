// Output dimensions. Flux picks a fixed size per aspect ratio (the table from Replicate's flux
// models at 1 megapixel); the simulator scales it to `imageSize` and keeps multiples of 16.

export const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

const FLUX_DIMENSIONS_AT_1024: Record<AspectRatio, readonly [number, number]> = {
  '1:1': [1024, 1024],
  '16:9': [1344, 768],
  '21:9': [1536, 640],
  '3:2': [1216, 832],
  '2:3': [832, 1216],
  '4:5': [896, 1088],
  '5:4': [1088, 896],
  '3:4': [896, 1152],
  '4:3': [1152, 896],
  '9:16': [768, 1344],
  '9:21': [640, 1536],
};

export function isAspectRatio(value: unknown): value is AspectRatio {
  return typeof value === 'string' && (ASPECT_RATIOS as readonly string[]).includes(value);
}

function toMultipleOf16(value: number): number {
  return Math.max(16, Math.round(value / 16) * 16);
}

/** `megapixels: "0.25"` halves both edges, like flux-schnell/dev. */
export function fluxDimensions(ratio: AspectRatio, imageSize: number, megapixels: '1' | '0.25' = '1'): { width: number; height: number } {
  const [width, height] = FLUX_DIMENSIONS_AT_1024[ratio];
  const scale = (imageSize / 1024) * (megapixels === '0.25' ? 0.5 : 1);
  return { width: toMultipleOf16(width * scale), height: toMultipleOf16(height * scale) };
}

/**
 * A size for an "a:b" ratio with about `imageSize`² pixels, in multiples of 16 (flux-kontext-pro's
 * ratios include 2:1 and 1:2, which flux's table lacks). Undefined for anything not "a:b".
 */
export function dimensionsForRatio(ratio: string, imageSize: number): { width: number; height: number } | undefined {
  const match = /^(\d+):(\d+)$/.exec(ratio);
  const a = Number(match?.[1]);
  const b = Number(match?.[2]);
  if (!(a > 0 && b > 0)) return undefined;
  return dimensionsForArea(a / b, imageSize * imageSize);
}

/** The size with this width/height ratio and about `area` pixels, in multiples of 16. */
export function dimensionsForArea(ratio: number, area: number): { width: number; height: number } {
  const width = Math.sqrt(area * ratio);
  return { width: toMultipleOf16(width), height: toMultipleOf16(width / ratio) };
}
