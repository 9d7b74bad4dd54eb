// Platform presets: the sizes each platform publishes at. Names are the public API.
export const PLATFORM_PRESETS = {
  'instagram-post': { width: 1080, height: 1080 },
  'instagram-story': { width: 1080, height: 1920 },
  'x-post': { width: 1200, height: 675 },
  'linkedin-post': { width: 1200, height: 627 },
  'youtube-thumbnail': { width: 1280, height: 720 },
  banner: { width: 1500, height: 500 },
  thumbnail: { width: 400, height: 400 },
} as const satisfies Record<string, { width: number; height: number }>;

export type Platform = keyof typeof PLATFORM_PRESETS;
export const PLATFORMS = Object.keys(PLATFORM_PRESETS) as [Platform, ...Platform[]];

export const IMAGE_FORMATS = ['webp', 'avif', 'png', 'jpeg'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Each format's file extension and content type: the one table of both. */
export const IMAGE_FILE_TYPES = {
  webp: { extension: 'webp', contentType: 'image/webp' },
  avif: { extension: 'avif', contentType: 'image/avif' },
  png: { extension: 'png', contentType: 'image/png' },
  jpeg: { extension: 'jpg', contentType: 'image/jpeg' },
} as const satisfies Record<ImageFormat, { extension: string; contentType: string }>;

/** The content type of a stored image by its file name, if it is one of ours. */
export function contentTypeOfFile(fileName: string): string | undefined {
  const extension = fileName.slice(fileName.lastIndexOf('.') + 1);
  return Object.values(IMAGE_FILE_TYPES).find((type) => type.extension === extension)?.contentType;
}

/** 'centre' crops the middle; 'attention' keeps the most salient region (libvips); 'pad' crops nothing: the whole image, padded to the shape (transparent where it has alpha, else white). */
export const CROP_STRATEGIES = ['centre', 'attention', 'pad'] as const;
export type CropStrategy = (typeof CROP_STRATEGIES)[number];

/** Custom sizes beside the presets are bounded so one request cannot ask for giant images. */
export const CUSTOM_SIZE_LIMITS = { min: 16, max: 4096 } as const;

export interface VariantSpec {
  /** A preset name, or `custom-WxH` for a custom size. */
  platform: string;
  width: number;
  height: number;
  format: ImageFormat;
}

export function variantSpecs(
  platforms: readonly Platform[],
  customSizes: readonly { width: number; height: number }[],
  formats: readonly ImageFormat[],
): VariantSpec[] {
  const sizes = [
    ...platforms.map((platform) => ({ platform: platform as string, ...PLATFORM_PRESETS[platform] })),
    ...customSizes.map((size) => ({ platform: `custom-${size.width}x${size.height}`, ...size })),
  ];
  return sizes.flatMap((size) => formats.map((format) => ({ ...size, format })));
}
