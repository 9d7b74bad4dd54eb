// Starts real Kiln apps for tests: a fresh database each, real HTTP, the real simulator.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createKilnClient, type KilnClient } from '../../client-sdk/index.ts';
import { createApiKey } from '../../db/api-keys.ts';
import { createTenant } from '../../db/tenants.ts';
import { createApp, type RunningApp } from '../../server/app.ts';
import { loadConfig, type Environment, type KilnConfig } from '../../server/config.ts';
import type { TracerProvider } from '@opentelemetry/api';
import type { Logger } from '../../jobs/logger.ts';

export function databaseServerUrl(): string {
  const url = process.env.KILN_TEST_DATABASE_SERVER;
  if (!url) throw new Error('KILN_TEST_DATABASE_SERVER is not set: run tests with `npm test` (its global setup starts PostgreSQL)');
  return url;
}

/** A new, empty database on the test server. */
export async function createTestDatabase(): Promise<string> {
  const server = new URL(databaseServerUrl());
  const name = `kiln_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.toString() });
  admin.on('error', () => {}); // a lost connection fails the query below; unheard, it would end the test run
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  server.pathname = `/${name}`;
  return server.toString();
}

export interface TestKiln {
  app: RunningApp;
  url: string;
  databaseUrl: string;
  dataDir: string;
  apiKey: string;
  tenantId: string;
  client: KilnClient;
  /** Another tenant's API key and client, for isolation tests. */
  newTenant(name?: string): Promise<{ tenantId: string; apiKey: string; client: KilnClient }>;
  /** Generations in the database, of every tenant: a refused call must not change it. */
  countGenerations(): Promise<number>;
  stop(): Promise<void>;
}

export interface StartOptions {
  env?: Environment;
  /** Where the app's log lines go (default: the configured level to stderr). */
  logger?: Logger;
  /** Where the app's spans go (default: the API's global provider, a no-op). */
  tracerProvider?: TracerProvider;
  databaseUrl?: string;
  dataDir?: string;
  /** Changes to the loaded config, for tuning numbers no environment variable sets. */
  configure?: (config: KilnConfig) => KilnConfig;
}

export async function startKiln(options: StartOptions = {}): Promise<TestKiln> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase());
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'kiln-test-data-')));
  const loaded = loadConfig({
    DATABASE_URL: databaseUrl,
    KILN_DATA_DIR: dataDir,
    PORT: '0',
    KILN_WORKER_PORT: '0',
    KILN_LOG_LEVEL: 'error',
    NODE_ENV: 'production',
    KILN_SIMULATOR_LATENCY_MS: '50-200',
    KILN_RETRY_DELAY_SECONDS: '1',
    KILN_SHUTDOWN_GRACE_MS: '2000',
    ...options.env,
  });
  const config = options.configure ? options.configure(loaded) : loaded;
  const app = await createApp(config, { ...(options.logger ? { logger: options.logger } : {}), ...(options.tracerProvider ? { tracerProvider: options.tracerProvider } : {}) }).start();
  const url = app.url ?? '';
  const clients: KilnClient[] = [];
  const newTenant = async (name = `tenant-${randomBytes(4).toString('hex')}`) => {
    const tenant = await createTenant(app.database.db, name);
    const key = await createApiKey(app.database.db, tenant.id, 'test');
    const client = createKilnClient({ url, apiKey: key.key });
    clients.push(client);
    return { tenantId: tenant.id, apiKey: key.key, client };
  };
  const first = await newTenant().catch(async (error: unknown) => {
    await app.stop();
    throw error;
  });
  return {
    app,
    url,
    databaseUrl,
    dataDir,
    apiKey: first.apiKey,
    tenantId: first.tenantId,
    client: first.client,
    newTenant,
    async countGenerations() {
      const row = await app.database.db.selectFrom('generations').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async stop() {
      for (const client of clients) client.close();
      await app.stop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
