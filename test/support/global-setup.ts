// One throwaway PostgreSQL for the whole test run (unless DATABASE_URL points at one).
// Each test then creates its own database on it, so tests never share state.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../db/embedded-postgres.ts';
import { freePort } from './ports.ts';

let embedded: EmbeddedPostgres | undefined;
let dataDir: string | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) {
    process.env.KILN_TEST_DATABASE_SERVER = process.env.DATABASE_URL;
    return;
  }
  dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-pg-'));
  // Durability is pointless for a cluster deleted after the run.
  embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), settings: ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] });
  process.env.KILN_TEST_DATABASE_SERVER = embedded.connectionString;
}

export async function globalTeardown(): Promise<void> {
  await embedded?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
