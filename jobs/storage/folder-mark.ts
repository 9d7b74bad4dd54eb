// A local asset folder names itself in a small file, so that processes can tell whether they
// share one: the database remembers the name of the first folder it was used with, and a
// process whose folder has another name (or none) keeps its assets where the others cannot
// see them.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

const MARK_FILE = '.kiln-folder-id';

export const newFolderId = (): string => randomBytes(16).toString('hex');

export async function readFolderMark(root: string): Promise<string | undefined> {
  const text = await readFile(path.join(root, MARK_FILE), 'utf8').catch(() => undefined);
  return text?.trim() || undefined;
}

export async function writeFolderMark(root: string, id: string): Promise<void> {
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, MARK_FILE), `${id}\n`, { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error; // another process of this folder wrote it first: the same folder either way
  });
}
