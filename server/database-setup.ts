// The database a Kiln process uses: DATABASE_URL when given, otherwise an embedded
// PostgreSQL in the data folder. Migrated before use.
import { openDatabase, type DatabaseHandle } from '../db/database.ts';
import { startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import { migrateToLatest } from '../db/migrate.ts';
import type { Logger } from '../jobs/logger.ts';
import type { KilnConfig } from './config.ts';

export interface ConnectedDatabase {
  url: string;
  handle: DatabaseHandle;
  /** Human-readable: where the data lives. */
  description: string;
  /** Closes the pool, and stops the embedded server if no other Kiln process still uses it. */
  close(): Promise<void>;
}

export async function connectDatabase(config: KilnConfig, logger: Logger): Promise<ConnectedDatabase> {
  let url = config.databaseUrl;
  let stopEmbedded = async () => {};
  let description = 'DATABASE_URL';
  if (!url) {
    const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, log: (line) => logger.info(line) });
    url = embedded.connectionString;
    description = `embedded PostgreSQL in ${config.dataDir}`;
    // Stopped by whoever stops last: other Kiln processes on this data folder may still use it.
    stopEmbedded = () => embedded.stop();
  }
  const handle = openDatabase({
    connectionString: url,
    maxConnections: config.dbPoolSize,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    onConnectionError: (error) => logger.warn('database connection lost; queries fail as "database unavailable" until it is back', { error: error.message }),
  });
  try {
    const applied = await migrateToLatest(handle.db);
    if (applied.length > 0) logger.info('database migrated', { applied: applied.join(',') });
  } catch (error) {
    await handle.close();
    await stopEmbedded();
    throw error;
  }
  return {
    url,
    handle,
    description,
    async close() {
      await handle.close();
      await stopEmbedded();
    },
  };
}
