// Where rendered images live. Keys are content-addressed (`<sha256>.<ext>`), so a stored
// object never changes and can be cached forever; storing a key again is a no-op.
import type { Readable } from 'node:stream';

export interface StoredObject {
  size: number;
  /** The bytes, read when asked for: a HEAD or a 304 never reads them. */
  stream(): Readable;
}

export interface AssetStorage {
  /** Stores the bytes under their key; a key already stored is left as it is (same key, same bytes). */
  put(key: string, bytes: Buffer): Promise<void>;
  open(key: string): Promise<StoredObject | undefined>;
  /** Removes the objects (retention); a key not stored is no error. */
  delete(keys: readonly string[]): Promise<void>;
  /** Throws, saying why, when the store cannot be used (checked once at start). */
  check(): Promise<void>;
  /** Where the objects are, for people: a folder or a bucket. */
  readonly description: string;
  close(): void;
}

/** Keys are `<64 hex>.<ext>`; anything else is not ours (and must never touch the filesystem). */
export const STORAGE_KEY_PATTERN = /^[0-9a-f]{64}\.(webp|avif|png|jpg)$/;
