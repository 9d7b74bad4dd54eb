import { createReadStream } from 'node:fs';
import { access, constants, mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { STORAGE_KEY_PATTERN, type AssetStorage } from './storage.ts';

/** Files under `<root>/<first two hex chars>/<key>`, written atomically (temp file + rename). */
export function createLocalStorage(root: string): AssetStorage {
  const fileFor = (key: string) => {
    if (!STORAGE_KEY_PATTERN.test(key)) throw new Error(`invalid storage key: ${key}`);
    return path.join(root, key.slice(0, 2), key);
  };
  return {
    description: `the folder ${root}`,
    async put(key, bytes) {
      const file = fileFor(key);
      const existing = await stat(file).catch(() => undefined);
      if (existing?.size === bytes.length) return; // same content, same key: already stored
      await mkdir(path.dirname(file), { recursive: true });
      const temporary = `${file}.${randomUUID()}.tmp`;
      await writeFile(temporary, bytes);
      await rename(temporary, file);
    },
    async open(key) {
      if (!STORAGE_KEY_PATTERN.test(key)) return undefined;
      const file = fileFor(key);
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) return undefined;
      return { size: info.size, stream: () => createReadStream(file) };
    },
    async delete(keys) {
      for (const key of keys) {
        await unlink(fileFor(key)).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        });
      }
    },
    async check() {
      await mkdir(root, { recursive: true });
      await access(root, constants.R_OK | constants.W_OK);
    },
    close() {},
  };
}
