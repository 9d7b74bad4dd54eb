// Where rendered images live. Keys are content-addressed (`<sha256>.<ext>`), so a stored
// object never changes and can be cached forever.
import type { Readable } from 'node:stream';

export interface StoredObject {
  size: number;
  stream(): Readable;
}

export interface AssetStorage {
  put(key: string, bytes: Buffer): Promise<void>;
  open(key: string): Promise<StoredObject | undefined>;
}

/** Keys are `<64 hex>.<ext>`; anything else is not ours (and must never touch the filesystem). */
export const STORAGE_KEY_PATTERN = /^[0-9a-f]{64}\.(webp|avif|png|jpg)$/;
