// Builds the asset store the config names and checks it before anything relies on it: the
// data folder (the default, one machine), or an S3-compatible bucket (any number of machines).
import { createLocalStorage } from '../jobs/storage/local-storage.ts';
import { createS3Storage } from '../jobs/storage/s3-storage.ts';
import type { AssetStorage } from '../jobs/storage/storage.ts';
import type { KilnConfig } from './config.ts';

export async function setUpStorage(config: KilnConfig): Promise<AssetStorage> {
  const settings = config.storage;
  const storage = settings.kind === 's3' ? createS3Storage(settings) : createLocalStorage(settings.root);
  try {
    await storage.check();
  } catch (error) {
    storage.close();
    throw error;
  }
  return storage;
}
