import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

// Input images of running and finished predictions, stored once per content (SHA-256), in memory
// or, with a data folder, one file each: outputs are rendered from them on download, after a
// restart too. Bytes no prediction refers to any more are dropped by retainOnly().

/** Bytes stored this recently are kept even if nothing refers to them yet (their prediction is about to). */
const RETAIN_GRACE_MS = 60_000;

export class InputStore {
  readonly #dir: string | null;
  readonly #memory = new Map<string, { bytes: Buffer; storedAt: number }>();

  /** `dir`: where the bytes go; null keeps them in memory. */
  constructor(dir: string | null) {
    this.#dir = dir;
  }

  /** Stores the bytes (once per content) and returns their SHA-256. */
  async put(bytes: Buffer): Promise<string> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (this.#dir === null) this.#memory.set(sha256, { bytes, storedAt: Date.now() });
    else {
      await mkdir(this.#dir, { recursive: true });
      await writeFile(path.join(this.#dir, sha256), bytes);
    }
    return sha256;
  }

  async get(sha256: string): Promise<Buffer | undefined> {
    if (!/^[0-9a-f]{64}$/.test(sha256)) return undefined;
    if (this.#dir === null) return this.#memory.get(sha256)?.bytes;
    return readFile(path.join(this.#dir, sha256)).catch(() => undefined);
  }

  /** Drops every input not in `referenced` (and not stored within the grace period). */
  async retainOnly(referenced: ReadonlySet<string>): Promise<void> {
    const graceStart = Date.now() - RETAIN_GRACE_MS;
    if (this.#dir === null) {
      for (const [sha256, { storedAt }] of this.#memory) if (!referenced.has(sha256) && storedAt < graceStart) this.#memory.delete(sha256);
      return;
    }
    const dir = this.#dir;
    const names = await readdir(dir).catch(() => []);
    for (const name of names) {
      if (referenced.has(name)) continue;
      const file = path.join(dir, name);
      const info = await stat(file).catch(() => undefined);
      if (info !== undefined && info.mtimeMs < graceStart) await rm(file, { force: true });
    }
  }
}
