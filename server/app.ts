// createApp(config) builds every part of Kiln explicitly and returns start/stop. Nothing is
// module-level, so tests can run several apps in one process.
import { randomBytes } from 'node:crypto';
import { trace, type Tracer, type TracerProvider } from '@opentelemetry/api';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseHandle } from '../db/database.ts';
import { DISPATCH_CHANNEL } from '../db/dispatch.ts';
import { createListener } from '../db/listener.ts';
import { createDispatcher, type Dispatcher } from '../jobs/dispatch/dispatcher.ts';
import { createGenerationWorker, type GenerationWorker } from '../jobs/generation-worker.ts';
import { silentLogger, type Logger } from '../jobs/logger.ts';
import { createJobQueue, type JobQueue } from '../jobs/queue.ts';
import type { Simulator } from '../jobs/simulator/index.ts';
import { createLocalStorage } from '../jobs/storage/local-storage.ts';
import { startApiServer } from './api-server.ts';
import type { KilnConfig } from './config.ts';
import { connectDatabase } from './database-setup.ts';
import { createLogger } from './logger.ts';
import { setUpProvider } from './provider-setup.ts';

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

export interface AppOptions {
  /** Where log lines go (default: pino to stderr, as configured). */
  logger?: Logger;
  /**
   * Where spans go. Default: the OpenTelemetry API's global provider — a no-op unless the
   * operator registers an SDK before Kiln starts (README, "Traces").
   */
  tracerProvider?: TracerProvider;
}

export function createApp(config: KilnConfig, options: AppOptions = {}): App {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer('kiln');
  const own = options.logger ? undefined : createLogger({ level: config.log.level, format: config.log.format, base: { role: config.role } });
  const logger = options.logger ?? own ?? silentLogger;
  return {
    async start() {
      // Each step registers how to undo itself; a failed start undoes what it did, in reverse.
      const undo: (() => Promise<void>)[] = [];
      const stopAll = async () => {
        for (const step of undo.splice(0).reverse()) {
          await step().catch((error: unknown) => logger.error('shutdown step failed', { error: String(error) }));
        }
        own?.flush(); // lines are written asynchronously: the last ones are out before the process ends
      };
      try {
        return await startParts(config, logger, tracer, undo, stopAll);
      } catch (error) {
        await stopAll();
        throw error;
      }
    },
  };
}

async function startParts(config: KilnConfig, logger: Logger, tracer: Tracer, undo: (() => Promise<void>)[], stopAll: () => Promise<void>): Promise<RunningApp> {
  // 1. The database: the one given, or an embedded PostgreSQL in the data folder; migrated.
  const connected = await connectDatabase(config, logger);
  undo.push(() => connected.close()); // first in, so closed last
  const database = connected.handle;
  const databaseUrl = connected.url;

  // 2. The provider: Replicate when a token is set, otherwise the built-in simulator.
  const runsWorker = config.role !== 'api';
  const { provider, policies, limiter, simulator, baseUrl: providerBaseUrl, stop: stopProvider } = await setUpProvider(config, { needsSimulator: runsWorker, db: database.db, logger });
  undo.push(stopProvider);
  const storage = createLocalStorage(path.join(config.dataDir, 'assets'));

  // 3. The queue, in its own schema of the same database. Stopped before the provider and
  //    the database, so in-flight jobs can finish during the grace period.
  const queue: JobQueue = createJobQueue({
    connectionString: databaseUrl,
    settings: config.queue,
    retry: config.worker.retry,
    onError: (error) => logger.error('queue error', { error: error.message }),
    onWarning: (warning) => logger.warn('queue warning', { message: warning.message }),
  });
  await queue.start();
  undo.push(() => queue.stop({ graceful: true, timeoutMs: config.shutdownGraceMs }));

  // 4. The worker. Predictions report back by webhook when the provider can reach us: at
  //    KILN_PUBLIC_URL, or at this process's own API when the provider is its built-in simulator
  //    (KILN_WEBHOOKS=off: polls only).
  let apiUrl: string | undefined;
  const webhookBaseUrl = () =>
    config.provider.webhooks === 'off' ? undefined : (config.publicUrl ?? (simulator && config.role === 'all' ? apiUrl : undefined));
  let worker: GenerationWorker | undefined;
  let dispatcher: Dispatcher | undefined;
  if (runsWorker) {
    worker = createGenerationWorker({
      db: database.db,
      queue,
      provider,
      storage,
      logger,
      tracer,
      workerId: `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      concurrency: config.worker.concurrency,
      pickup: config.worker.pickup,
      create: {
        settleMs: config.provider.createSettleMs,
        minCancelAfterSeconds: config.provider.minCancelAfterSeconds,
        predictionTimeoutSeconds: config.provider.predictionTimeoutSeconds,
        earlierCreate: config.provider.earlierCreate,
      },
      defer: config.worker.defer,
      polls: config.worker.polls,
      readsPerMinute: config.provider.reads.perMinute,
      webhooks: { baseUrl: webhookBaseUrl, backstopMs: config.provider.webhookBackstopMs },
      download: { maxBytes: config.limits.maxDownloadBytes, timeoutMs: config.worker.downloadTimeoutMs },
      render: { maxInputPixels: config.limits.maxInputPixels, timeoutSeconds: config.worker.renderTimeoutSeconds },
    });
    await worker.start();

    // The dispatcher (every worker process runs one; one at a time ticks): hands queued
    // generations to the create phase at the create budget's pace, fairly among tenants.
    dispatcher = createDispatcher({
      db: database.db,
      queue,
      logger,
      budget: limiter.budget('create'),
      settings: config.worker.dispatch,
      listen: async (wake) => {
        const listener = createListener({
          connectionString: databaseUrl,
          channel: DISPATCH_CHANNEL,
          onNotify: wake,
          onError: (error) => logger.warn('dispatch listener connection failed; reconnecting', { error: error.message }),
          reconnectMs: config.realtime.listenerReconnectMs,
        });
        await listener.start();
        return () => listener.stop();
      },
    });
    await dispatcher.start();
  }

  // 5. The API.
  let url: string | undefined;
  if (config.role !== 'worker') {
    const webhookSecret = config.provider.webhookSecret ?? simulator?.webhookSecret;
    const api = await startApiServer({
      config,
      db: database.db,
      databaseUrl,
      queue,
      storage,
      policies: runsWorker ? policies : undefined,
      limiter,
      // Verifies the provider's webhooks: the configured secret, or the provider's own.
      webhookSecret: webhookSecret ? () => Promise.resolve(webhookSecret) : () => provider.webhookSecret(),
      logger,
      tracer,
    });
    url = api.url;
    apiUrl = api.url;
    undo.push(() => api.stop());
  }

  // Shutdown runs these steps in reverse: first the worker stops fetching and finishes what it
  // holds (within the grace period), then the API closes its sockets, then the queue, the
  // provider and the database.
  const running = worker;
  if (running) undo.push(() => running.stop(config.shutdownGraceMs));
  const dispatching = dispatcher;
  if (dispatching) undo.push(() => dispatching.stop()); // stops first: no new create jobs while the worker drains

  return { url, providerUrl: providerBaseUrl, simulator, database, databaseUrl, databaseDescription: connected.description, stop: stopAll };
}
