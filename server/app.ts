// createApp(config) builds every part of Kiln explicitly and returns start/stop. Nothing is
// module-level, so tests can run several apps in one process.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { sql } from 'kysely';
import type { DatabaseHandle } from '../db/database.ts';
import { createGenerationWorker } from '../jobs/generation-worker.ts';
import type { Logger } from '../jobs/logger.ts';
import { createJobQueue, type JobQueue } from '../jobs/queue.ts';
import type { Simulator } from '../jobs/simulator/index.ts';
import { createLocalStorage } from '../jobs/storage/local-storage.ts';
import { bearerToken, createAuthenticator } from './auth.ts';
import type { KilnConfig } from './config.ts';
import { connectDatabase } from './database-setup.ts';
import { createGenerationService } from './generation-service.ts';
import { createHttpServer, type HealthReport } from './http-server.ts';
import { createLogger } from './logger.ts';
import { setUpProvider } from './provider-setup.ts';
import { createAppRouter } from './router.ts';
import type { Context } from './trpc.ts';

/** Calls one HTTP request may carry (the client-sdk batches up to this many). */
export const MAX_CALLS_PER_HTTP_BATCH = 20;

export interface RunningApp {
  /** Where the API listens (undefined for a worker-only process). */
  url: string | undefined;
  /** The provider Kiln talks to: the simulator's URL when no Replicate token is set. */
  providerUrl: string;
  simulator: Simulator | undefined;
  database: DatabaseHandle;
  databaseUrl: string;
  databaseDescription: string;
  stop(): Promise<void>;
}

export interface App {
  start(): Promise<RunningApp>;
}

export function createApp(config: KilnConfig, options: { logger?: Logger } = {}): App {
  const logger = options.logger ?? createLogger(config.logLevel);
  return {
    async start() {
      // Each step registers how to undo itself; a failed start undoes what it did, in reverse.
      const undo: (() => Promise<void>)[] = [];
      const stopAll = async () => {
        for (const step of undo.splice(0).reverse()) {
          await step().catch((error: unknown) => logger.error('shutdown step failed', { error: String(error) }));
        }
      };
      try {
        return await startParts(config, logger, undo, stopAll);
      } catch (error) {
        await stopAll();
        throw error;
      }
    },
  };
}

async function startParts(config: KilnConfig, logger: Logger, undo: (() => Promise<void>)[], stopAll: () => Promise<void>): Promise<RunningApp> {
  // 1. The database: the one given, or an embedded PostgreSQL in the data folder; migrated.
  const connected = await connectDatabase(config, logger);
  undo.push(() => connected.close()); // first in, so closed last
  const database = connected.handle;
  const databaseUrl = connected.url;

  // 2. The provider: Replicate when a token is set, otherwise the built-in simulator.
  const runsWorker = config.role !== 'api';
  const { provider, policies, simulator, baseUrl: providerBaseUrl, stop: stopProvider } = await setUpProvider(config, { needsSimulator: runsWorker });
  undo.push(stopProvider);
  const storage = createLocalStorage(path.join(config.dataDir, 'assets'));

  // 3. The queue, in its own schema of the same database. Stopped before the provider and
  //    the database, so in-flight jobs can finish during the grace period.
  const queue: JobQueue = createJobQueue({
    connectionString: databaseUrl,
    generationRetryLimit: config.worker.retryLimit,
    retryDelaySeconds: config.worker.retryDelaySeconds,
    retryDelayMaxSeconds: 120,
    generationExpireSeconds: config.worker.deadlineSeconds + 60,
    maxConnections: 10,
    onError: (error) => logger.error('queue error', { error: error.message }),
    onWarning: (warning) => logger.warn('queue warning', { message: warning.message }),
  });
  await queue.start();
  undo.push(() => queue.stop({ graceful: true, timeoutMs: config.shutdownGraceMs }));

  // 4. The worker.
  if (runsWorker) {
    const worker = createGenerationWorker({
      db: database.db,
      queue,
      provider,
      storage,
      logger,
      concurrency: config.worker.concurrency,
      deadlineSeconds: config.worker.deadlineSeconds,
      pollInitialMs: config.worker.pollInitialMs,
      pollMaxMs: config.worker.pollMaxMs,
      download: { maxBytes: config.limits.maxDownloadBytes, timeoutMs: 60_000 },
      render: { maxInputPixels: config.limits.maxInputPixels, timeoutSeconds: 60 },
    });
    await worker.start();
  }

  // 5. The API.
  let url: string | undefined;
  if (config.role !== 'worker') {
    let publicUrl = config.publicUrl ?? '';
    const generations = createGenerationService({ db: database.db, queue, publicUrl: () => publicUrl });
    const authenticator = createAuthenticator(database.db, { cacheMs: config.authCacheMs });
    const router = createAppRouter({ isDev: config.isDev });
    const trpc = createHTTPHandler({
      router,
      basePath: '/trpc/',
      maxBodySize: config.limits.maxBodyBytes,
      // HTTP batching must not become a way around the 1,000-item batch limit.
      maxBatchSize: MAX_CALLS_PER_HTTP_BATCH,
      createContext: ({ req }): Context => {
        const key = bearerToken(req.headers.authorization);
        return {
          hasCredentials: key !== undefined,
          authenticate: async () => (key ? authenticator.authenticate(key) : undefined),
          services: { generations },
        };
      },
      onError: ({ error, path: procedure }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') logger.error('request failed', { procedure, error: error.message, stack: error.cause?.stack });
      },
    });
    const health = async (): Promise<HealthReport> => {
      const checks: HealthReport['checks'] = {};
      try {
        await sql`SELECT 1`.execute(database.db);
        checks.database = { ok: true };
      } catch (error) {
        // The detail goes to the log; /health is public and says only what failed.
        logger.warn('health check: database unreachable', { error: error instanceof Error ? error.message : String(error) });
        checks.database = { ok: false, detail: 'unreachable' };
      }
      if (runsWorker) {
        const breaker = policies.breakerState();
        checks.provider = { ok: breaker !== 'open', detail: `circuit ${breaker}` };
      }
      return { status: Object.values(checks).every((check) => check.ok) ? 'ok' : 'degraded', checks };
    };
    const server = createHttpServer({ trpc, storage, health, logger });
    await listen(server, config.port, config.host);
    const address = server.address() as AddressInfo;
    url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    if (!publicUrl) publicUrl = url;
    undo.push(() => closeServer(server));
  }

  return { url, providerUrl: providerBaseUrl, simulator, database, databaseUrl, databaseDescription: connected.description, stop: stopAll };
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stop accepting connections, let in-flight requests finish, drop idle keep-alive sockets. */
function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5_000).unref();
  });
}
