import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { newFileId } from './ids.ts';

// Files uploaded through POST /v1/files: their metadata in memory, their bytes in memory or, with
// a data folder, one file each on disk. They expire retentionMs after upload (24 h on Replicate).

export interface FileRecord {
  readonly id: string;
  readonly name: string;
  readonly contentType: string;
  readonly size: number;
  readonly sha256: string;
  readonly md5: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface NewFile {
  readonly name: string;
  readonly contentType: string;
  readonly bytes: Buffer;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Replicate's file object. */
export interface FileJson {
  id: string;
  name: string;
  content_type: string;
  size: number;
  etag: string;
  checksums: { sha256: string; md5: string };
  metadata: Readonly<Record<string, unknown>>;
  created_at: string;
  expires_at: string;
  urls: { get: string };
}

export interface FileStoreOptions {
  readonly retentionMs: number;
  /** Where the bytes go; null keeps them in memory. */
  readonly bytesDir: string | null;
  /** Told of every file added or gone, so the simulator's journal can keep them across restarts. */
  readonly onSaved?: (file: FileRecord) => void;
  readonly onDeleted?: (id: string) => void;
}

export class FileStore {
  readonly #options: FileStoreOptions;
  readonly #files = new Map<string, FileRecord>();
  readonly #memoryBytes = new Map<string, Buffer>();

  constructor(options: FileStoreOptions) {
    this.#options = options;
  }

  async create(file: NewFile): Promise<FileRecord> {
    const createdAt = Date.now();
    const record: FileRecord = {
      id: newFileId(),
      name: file.name,
      contentType: file.contentType,
      size: file.bytes.length,
      sha256: createHash('sha256').update(file.bytes).digest('hex'),
      md5: createHash('md5').update(file.bytes).digest('hex'),
      metadata: file.metadata,
      createdAt,
      expiresAt: createdAt + this.#options.retentionMs,
    };
    const { bytesDir } = this.#options;
    if (bytesDir === null) this.#memoryBytes.set(record.id, file.bytes);
    else {
      await mkdir(bytesDir, { recursive: true });
      await writeFile(this.#pathOf(bytesDir, record.id), file.bytes);
    }
    this.#files.set(record.id, record);
    this.#options.onSaved?.(record);
    return record;
  }

  /** Undefined when unknown, deleted or expired. */
  get(id: string): FileRecord | undefined {
    const record = this.#files.get(id);
    return record === undefined || record.expiresAt <= Date.now() ? undefined : record;
  }

  async read(id: string): Promise<Buffer | undefined> {
    if (this.get(id) === undefined) return undefined;
    const { bytesDir } = this.#options;
    if (bytesDir === null) return this.#memoryBytes.get(id);
    return readFile(this.#pathOf(bytesDir, id)).catch(() => undefined);
  }

  /** Returns whether there was such a file. */
  async delete(id: string): Promise<boolean> {
    if (this.get(id) === undefined) return false;
    await this.#remove(id);
    return true;
  }

  /** A file known from before a restart (the simulator's journal). */
  restore(record: FileRecord): void {
    this.#files.set(record.id, record);
  }

  all(): FileRecord[] {
    return [...this.#files.values()];
  }

  async prune(): Promise<void> {
    const now = Date.now();
    for (const record of [...this.#files.values()]) if (record.expiresAt <= now) await this.#remove(record.id);
  }

  toJson(record: FileRecord, baseUrl: string): FileJson {
    return {
      id: record.id,
      name: record.name,
      content_type: record.contentType,
      size: record.size,
      etag: record.md5,
      checksums: { sha256: record.sha256, md5: record.md5 },
      metadata: record.metadata,
      created_at: new Date(record.createdAt).toISOString(),
      expires_at: new Date(record.expiresAt).toISOString(),
      urls: { get: `${baseUrl}/v1/files/${record.id}` },
    };
  }

  async #remove(id: string): Promise<void> {
    this.#files.delete(id);
    this.#memoryBytes.delete(id);
    const { bytesDir } = this.#options;
    if (bytesDir !== null) await rm(this.#pathOf(bytesDir, id), { force: true });
    this.#options.onDeleted?.(id);
  }

  #pathOf(dir: string, id: string): string {
    // Ids are generated here (lowercase base32), so they are safe file names.
    return path.join(dir, id);
  }
}
