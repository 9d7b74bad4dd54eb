// How a generation's input image reaches the provider: uploaded to its Files API once per file
// lifetime, and named by URL in every create that starts from it (db/provider-files.ts keeps the
// files). The bytes are read from the asset store and decoded once before they go: a source
// whose header looked fine but whose pixels do not decode fails here, for good, with its own
// code — not at the provider, after a paid create.
import { buffer } from 'node:stream/consumers';
import type { Kysely } from 'kysely';
import sharp from 'sharp';
import { claimProviderFile, findLiveProviderFile, type KnownProviderFile } from '../../db/provider-files.ts';
import { describeInputImage, type Database, type InputImageJson } from '../../db/schema.ts';
import { IMAGE_FILE_TYPES } from '../render/presets.ts';
import type { ImageProvider } from '../provider/provider.ts';
import type { AssetStorage } from '../storage/storage.ts';

/** The input image cannot be used: missing from the store, or not decodable. Retrying cannot help. */
export class UnusableSourceError extends Error {
  override name = 'UnusableSourceError';
}

export interface InputFilesOptions {
  db: Kysely<Database>;
  provider: ImageProvider;
  storage: AssetStorage;
  /** A file is reused only while it lives at least this much longer (the model reads it when it starts). */
  reuseMarginSeconds: number;
  /** How long a file lives when the provider's answer does not say. */
  assumedLifetimeSeconds: number;
  /** Decoding the bytes before they are uploaded. */
  decode: { maxPixels: number; timeoutSeconds: number };
}

export interface InputFileUrl {
  url: string;
  /** The file this create uploaded; null when a live one was reused. */
  uploaded: (KnownProviderFile & { bytes: number }) | null;
}

export interface InputFiles {
  /** The URL the provider reads the image from; uploads it first when no live file of it is known. */
  urlFor(image: InputImageJson, signal: AbortSignal): Promise<InputFileUrl>;
}

export function createInputFiles(options: InputFilesOptions): InputFiles {
  const { db, provider, storage } = options;

  /** The bytes as the provider's image models take them (JPEG, PNG, WebP; an AVIF goes as a lossless PNG of it), decoded once to prove they can be. */
  async function uploadable(image: InputImageJson): Promise<{ bytes: Buffer; format: 'png' | 'jpeg' | 'webp' }> {
    const stored = await storage.open(image.storageKey);
    if (!stored) throw new UnusableSourceError(`${describeInputImage(image)} is no longer stored; ${image.kind === 'source' ? 'upload the image again' : 'start from an image that is still kept'}`);
    const bytes = await buffer(stored.stream());
    const decoder = () => sharp(bytes, { failOn: 'warning', limitInputPixels: options.decode.maxPixels }).timeout({ seconds: options.decode.timeoutSeconds });
    try {
      if (image.format === 'avif') return { bytes: await decoder().png().toBuffer(), format: 'png' };
      await decoder().stats();
      return { bytes, format: image.format };
    } catch (cause) {
      throw new UnusableSourceError(`${describeInputImage(image)} cannot be decoded (${image.format.toUpperCase()}, it may be truncated or corrupt); upload a sound copy of the image`, { cause });
    }
  }

  return {
    async urlFor(image, signal) {
      const key = { scope: provider.fileScope, contentHash: image.contentHash };
      // Most creates find the file: one read, no lock, no upload.
      const live = await findLiveProviderFile(db, key, options.reuseMarginSeconds);
      if (live) return { url: live.url, uploaded: null };
      let bytes = 0;
      const { file, uploaded } = await claimProviderFile(db, key, options.reuseMarginSeconds, async () => {
        const prepared = await uploadable(image);
        bytes = prepared.bytes.length;
        const type = IMAGE_FILE_TYPES[prepared.format];
        const sent = await provider.uploadFile(
          { bytes: prepared.bytes, contentType: type.contentType, filename: `${image.contentHash}.${type.extension}`, metadata: { kiln_content_sha256: image.contentHash } },
          signal,
        );
        return { fileId: sent.id, url: sent.url, expiresAt: sent.expiresAt ?? new Date(Date.now() + options.assumedLifetimeSeconds * 1000) };
      });
      return { url: file.url, uploaded: uploaded ? { ...file, bytes } : null };
    },
  };
}
