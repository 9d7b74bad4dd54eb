// createApp(config) builds every part of Kiln explicitly and returns start/stop. Nothing is
// module-level, so tests can run several apps in one process.
import { randomBytes } from 'node:crypto';
import { trace, type Tracer, type TracerProvider } from '@opentelemetry/api';
import os from 'node:os';
import type { DatabaseHandle } from '../db/database.ts';
import { DISPATCH_CHANNEL } from '../db/dispatch.ts';
import { createListener } from '../db/listener.ts';
import { countAwaitingProvider } from '../db/provider-work.ts';
import { DISPATCH_QUEUE_NAME, readQueueDepths } from '../db/queue-depth.ts';
import { createDispatcher, type Dispatcher } from '../jobs/dispatch/dispatcher.ts';
import { createGenerationWorker, type GenerationWorker } from '../jobs/generation-worker.ts';
import { silentLogger, type Logger } from '../jobs/logger.ts';
import { QUEUES, createJobQueue, type JobQueue } from '../jobs/queue.ts';
import { createPruner } from '../jobs/retention/pruner.ts';
import { scheduleRetention } from '../jobs/retention/schedule.ts';
import type { Simulator } from '../jobs/simulator/index.ts';
import { startApiServer } from './api-server.ts';
import type { KilnConfig } from './config.ts';
import { connectDatabase } from './database-setup.ts';
import { createHealthChecks } from './health.ts';
import { createLogger } from './logger.ts';
import { createKilnMetrics, type KilnMetrics } from './metrics/kiln-metrics.ts';
import { startOpsServer } from './ops-server.ts';
import { setUpProvider } from './provider-setup.ts';
import { setUpStorage } from './storage-setup.ts';

export interface RunningApp {
  /** Where the API listens (undefined for a worker-only process). */
  url: string | undefined;
  /** Where /health, /ready and /metrics are served: the API's address, or a worker's own port (KILN_WORKER_PORT). */
  opsUrl: string;
  /** This app's metrics registry. */
  metrics: KilnMetrics;
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
  // This app's registry: every part below reports to it (jobs/ through its JobMetrics port).
  let snapshotFailures = 0;
  const metrics = createKilnMetrics(config.metrics, {
    onSnapshotError: (error) => {
      // A scrape every few seconds while the database is away: one line, then one per hundred.
      if (snapshotFailures++ % 100 === 0) logger.warn('metrics: reading cluster state failed', { error: error instanceof Error ? error.message : String(error) });
    },
  });

  // 2. The provider: Replicate when a token is set, otherwise the built-in simulator.
  const runsWorker = config.role !== 'api';
  const { provider, policies, limiter, simulator, baseUrl: providerBaseUrl, stop: stopProvider } = await setUpProvider(config, { needsSimulator: runsWorker, db: database.db, logger, metrics: metrics.jobs });
  undo.push(stopProvider);
  // Assets: the data folder, or a bucket; checked now, so a wrong bucket or folder fails the start.
  const storage = await setUpStorage(config, database.db, logger);
  undo.push(async () => storage.close());
  logger.info(`assets are stored in ${storage.description}`);

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

  // What /ready checks and /metrics reads at scrape time (the cluster's state, from the database).
  const breakerState = runsWorker ? () => policies.breakerState() : undefined;
  const health = createHealthChecks({ db: database.db, queue, role: config.role, breakerState, readyCacheMs: config.health.readyCacheMs, logger });
  const budgets = [limiter.budget('create'), limiter.budget('read')];
  metrics.readCluster(async () => {
    const [queues, predictionsInFlight, states] = await Promise.all([readQueueDepths(database.db, 'pgboss', Object.values(QUEUES)), countAwaitingProvider(database.db), limiter.state()]);
    return { queues, predictionsInFlight, budgets: states.map((state) => ({ ...state, perMinute: budgets.find((budget) => budget.name === state.name)?.perMinute ?? 0 })) };
  }, [...Object.values(QUEUES).map((queue) => ({ queue, states: ['queued', 'scheduled', 'active'] as const })), { queue: DISPATCH_QUEUE_NAME, states: ['queued'] as const }]);
  if (breakerState) metrics.readBreaker(breakerState);

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
        inputFiles: config.provider.inputFiles,
      },
      defer: config.worker.defer,
      polls: config.worker.polls,
      readsPerMinute: config.provider.reads.perMinute,
      webhooks: { baseUrl: webhookBaseUrl, backstopMs: config.provider.webhookBackstopMs },
      download: { maxBytes: config.limits.maxDownloadBytes, timeoutMs: config.worker.downloadTimeoutMs },
      render: { maxInputPixels: config.limits.maxInputPixels, timeoutSeconds: config.worker.renderTimeoutSeconds },
      catalogueMarginShare: config.optimizer.marginShare,
      metrics: metrics.jobs,
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

    // Retention: on a schedule, one run at a time across every process (see jobs/retention/).
    const pruner = createPruner({ db: database.db, storage, logger, policy: config.retention });
    const stopRetention = await scheduleRetention({ queue, pruner, cron: config.retention.cron, logger });
    undo.push(stopRetention);
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
      health,
      metrics,
      logger,
      tracer,
    });
    url = api.url;
    apiUrl = api.url;
    undo.push(() => api.stop());
  }

  // A worker-only process has no API: its probes and scrapes get a small port of their own.
  let opsUrl = url ?? '';
  if (config.role === 'worker') {
    const ops = await startOpsServer({ host: config.host, port: config.workerPort, health, metrics, logger, timeouts: config.api.http });
    opsUrl = ops.url;
    undo.push(() => ops.stop());
  }

  // Shutdown runs these steps in reverse: first the worker stops fetching and finishes what it
  // holds (within the grace period), then the API closes its sockets, then the queue, the
  // provider and the database.
  const running = worker;
  if (running) undo.push(() => running.stop(config.shutdownGraceMs));
  const dispatching = dispatcher;
  if (dispatching) undo.push(() => dispatching.stop()); // stops first: no new create jobs while the worker drains

  return { url, opsUrl, metrics, providerUrl: providerBaseUrl, simulator, database, databaseUrl, databaseDescription: connected.description, stop: stopAll };
}
