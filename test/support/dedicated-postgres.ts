// A PostgreSQL of a test's own (its own data folder and port), for tests that stop and start
// the server: the shared one of the global setup serves every other test at the same time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../db/embedded-postgres.ts';
import { freePort } from './ports.ts';

export interface DedicatedPostgres {
  /** The `kiln` database on it. */
  connectionString: string;
  /** `pg_ctl stop -m fast`: every session is ended, as when PostgreSQL is restarted or fails over. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port. */
  startServer(): Promise<void>;
  /** Stops it for good and removes its folder. */
  close(): Promise<void>;
}

export async function startDedicatedPostgres(): Promise<DedicatedPostgres> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-own-pg-'));
  const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), settings: ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] });
  return {
    connectionString: embedded.connectionString,
    stopServer: () => embedded.stopServer(),
    startServer: () => embedded.startServer(),
    async close() {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
