import { createReadStream } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
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
  };
}
