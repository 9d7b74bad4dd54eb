// The servers under test, each started as its own process (on a free port of 127.0.0.1 where it
// listens) and stopped by the scope: a real Kiln API (`server/cli.ts serve`), a Kiln worker
// process on the same database, and the bare baseline (baseline-server.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiKey } from '../../db/api-keys.ts';
import { openDatabase } from '../../db/database.ts';
import type { Kysely } from 'kysely';
import type { Database, ShareBy } from '../../db/schema.ts';
import { createTenant, updateTenant } from '../../db/tenants.ts';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../jobs/simulator/index.ts';
import { standaloneProviderEnv } from '../support/simulator.ts';
import type { Scope } from './harness.ts';
import { freePort, spawnChild, waitUntilHealthy, type Child } from './processes.ts';

/** The repository root: children run from it, as `npm start` would. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Kiln's default KILN_DB_POOL_SIZE; the baseline gets the same pool. */
export const POOL_SIZE = 20;

const HEALTHY_WITHIN_MS = 60_000;

export interface ServerUnderTest {
  port: number;
  apiKey: string;
  child: Child;
}

export interface KilnProcessOptions {
  /** Extra or overriding environment variables for the child. */
  env?: Record<string, string>;
  /** The label of the API key made for the benchmark's tenant. */
  keyLabel?: string;
}

/** For profiling the server under test, e.g. KILN_BENCH_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
function profilingEnv(): Record<string, string> {
  const nodeOptions = process.env.KILN_BENCH_NODE_OPTIONS?.trim();
  return nodeOptions ? { NODE_OPTIONS: nodeOptions } : {};
}

async function tempDataDir(scope: Scope): Promise<string> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-data-'));
  scope.defer(() => rm(dataDir, { recursive: true, force: true }));
  return dataDir;
}

/** A Kiln API process (KILN_ROLE=api unless `env` says otherwise) with a fresh tenant and API key. */
export async function startKiln(databaseUrl: string, scope: Scope, signal: AbortSignal, options: KilnProcessOptions = {}): Promise<ServerUnderTest> {
  signal.throwIfAborted();
  const port = await freePort();
  const dataDir = await tempDataDir(scope);
  const child = spawnChild('kiln', ['server/cli.ts', 'serve'], {
    cwd: ROOT,
    // The worker would compete for the CPU while rendering; this measures acceptance only.
    env: { ...kilnEnv(databaseUrl, 'api', dataDir), PORT: String(port), ...options.env },
  });
  scope.defer(() => child.stop());
  await waitUntilHealthy(child, `http://127.0.0.1:${port}/health`, { timeoutMs: HEALTHY_WITHIN_MS, signal });

  // Kiln has migrated the database by now; the key is made the way `kiln keys create` makes it.
  const database = openDatabase({ connectionString: databaseUrl, maxConnections: 1, applicationName: 'kiln-bench-setup' });
  try {
    const tenant = await createBenchTenant(database.db, { name: 'bench', keyLabel: options.keyLabel ?? 'enqueue benchmark' });
    return { port, apiKey: tenant.apiKey, child };
  } finally {
    await database.close();
  }
}

/**
 * A tenant for a benchmark, with an API key. Its request limits are far above anything a
 * benchmark sends: the limit is still checked on every call (its cost is measured), but never
 * refuses one.
 */
export async function createBenchTenant(
  db: Kysely<Database>,
  options: { name: string; keyLabel: string; tier?: string; shareBy?: ShareBy },
): Promise<{ id: string; apiKey: string }> {
  const tenant = await createTenant(db, `${options.name}-${randomBytes(3).toString('hex')}`, options.tier ?? 'standard', options.shareBy ?? 'tenant');
  await updateTenant(db, tenant.id, { requestsPerMinute: 100_000_000, requestBurst: 1_000_000 });
  const key = await createApiKey(db, tenant.id, options.keyLabel);
  return { id: tenant.id, apiKey: key.key };
}

/**
 * A Kiln worker process (KILN_ROLE=worker, with its built-in provider simulator) on the same
 * database. Start it after the API, which has migrated the database by then. It serves no
 * HTTP, so it is ready once it prints that it is running.
 */
/** What every Kiln process under test gets: its role, a private data folder, quiet logs. */
function kilnEnv(databaseUrl: string, role: 'api' | 'worker', dataDir: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    KILN_ROLE: role,
    HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    KILN_LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    KILN_SHUTDOWN_GRACE_MS: '2000',
    ...profilingEnv(),
  };
}

export async function startKilnWorker(databaseUrl: string, scope: Scope, signal: AbortSignal, options: { env?: Record<string, string> } = {}): Promise<Child> {
  signal.throwIfAborted();
  const dataDir = await tempDataDir(scope);
  const child = spawnChild('kiln worker', ['server/cli.ts', 'serve'], {
    cwd: ROOT,
    // Several workers share the machine: each takes a free port for its /health and /metrics.
    env: { ...kilnEnv(databaseUrl, 'worker', dataDir), KILN_WORKER_PORT: '0', ...options.env },
  });
  scope.defer(() => child.stop());
  await child.waitForOutput('Kiln is running', { timeoutMs: HEALTHY_WITHIN_MS, signal });
  return child;
}

export async function startBaseline(databaseUrl: string, scope: Scope, signal: AbortSignal): Promise<ServerUnderTest> {
  signal.throwIfAborted();
  const port = await freePort();
  const apiKey = `kiln_sk_${randomBytes(32).toString('base64url')}`;
  const child = spawnChild('baseline server', ['test/bench/baseline-server.ts'], {
    cwd: ROOT,
    env: {
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      BENCH_API_KEY: apiKey,
      BENCH_TENANT_ID: randomUUID(),
      BENCH_POOL_SIZE: String(POOL_SIZE),
      NODE_ENV: 'production',
    },
  });
  scope.defer(() => child.stop());
  await waitUntilHealthy(child, `http://127.0.0.1:${port}/trpc/health`, { timeoutMs: HEALTHY_WITHIN_MS, signal });
  return { port, apiKey, child };
}

/** The baseline's one table, shaped like the core of Kiln's generations row. */
export const BASELINE_TABLE_SQL = `CREATE TABLE IF NOT EXISTS bench_baseline (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL,
  prompt text NOT NULL,
  request jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`;

/**
 * A simulated Replicate in this process, stopped with the scope, and the environment that points
 * Kiln processes at it with budgets equal to its limits (webhooks signed with its secret).
 */
export async function startBenchProvider(
  scope: Scope,
  options: SimulatorOptions & { createsPerMinute: number; readsPerMinute: number },
): Promise<{ simulator: Simulator; env: Record<string, string> }> {
  const simulator = createSimulator(options);
  await simulator.start();
  scope.defer(() => simulator.stop());
  const env = {
    ...standaloneProviderEnv(simulator),
    REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret,
    KILN_PROVIDER_CREATES_PER_MINUTE: String(options.createsPerMinute),
    KILN_PROVIDER_READS_PER_MINUTE: String(options.readsPerMinute),
  };
  return { simulator, env };
}
