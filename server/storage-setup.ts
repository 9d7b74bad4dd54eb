// Builds the asset store the config names and checks it before anything relies on it: the
// data folder (the default, one machine), or an S3-compatible bucket (any number of machines).
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { keepFirstValue } from '../db/secrets.ts';
import type { Logger } from '../jobs/logger.ts';
import { newFolderId, readFolderMark, writeFolderMark } from '../jobs/storage/folder-mark.ts';
import { createLocalStorage } from '../jobs/storage/local-storage.ts';
import { createS3Storage } from '../jobs/storage/s3-storage.ts';
import type { AssetStorage } from '../jobs/storage/storage.ts';
import type { KilnConfig } from './config.ts';

const FOLDER_ID_NAME = 'local-asset-folder-id';

export async function setUpStorage(config: KilnConfig, db: Kysely<Database>, logger: Logger): Promise<AssetStorage> {
  const settings = config.storage;
  const storage = settings.kind === 's3' ? createS3Storage(settings) : createLocalStorage(settings.root);
  try {
    await storage.check();
    if (settings.kind === 'local') await checkFolderIsShared(settings.root, config.role, db, logger);
  } catch (error) {
    storage.close();
    throw error;
  }
  return storage;
}

/**
 * Processes that split the roles (KILN_ROLE=api, KILN_ROLE=worker) each keep assets in their own
 * data folder: unless the folders are one (one machine, or a shared filesystem), the API answers
 * 404 for what a worker stored. A folder other than the one the database was first used with is
 * told loudly; it is not refused, since everything but serving assets still works.
 */
async function checkFolderIsShared(root: string, role: KilnConfig['role'], db: Kysely<Database>, logger: Logger): Promise<void> {
  const mark = await readFolderMark(root);
  const candidate = mark ?? newFolderId();
  const known = (await keepFirstValue(db, FOLDER_ID_NAME, Buffer.from(candidate))).toString();
  if (known === candidate) {
    if (!mark) await writeFolderMark(root, candidate);
    return;
  }
  const why =
    role === 'all'
      ? 'this database stored assets in another folder before (the folder was replaced, or another process keeps its own)'
      : `with KILN_ROLE=${role}, API and worker processes must share one asset folder (one machine, or a shared filesystem), or use KILN_STORAGE=s3`;
  logger.warn(`assets are kept in ${root}, which is not the folder the other Kiln processes of this database use: assets stored there are not served from here, and assets stored here are not served by them; ${why}`);
}
