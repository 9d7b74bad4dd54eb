// Configuration: environment variables parsed once by zod into a typed object.
// Defaults make `npm start` work on a fresh machine with nothing set.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { TenantTier } from '../db/schema.ts';
import { LOG_FORMATS, LOG_LEVELS } from './logger.ts';

const intFromEnv = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(fallback);
const numberFromEnv = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().min(min).max(max).default(fallback);
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value?.trim() ? value.trim() : undefined));
const optionalUrl = optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()).transform((value) => value?.replace(/\/+$/, ''));

const environmentSchema = z.object({
  NODE_ENV: z.string().default('production'),
  KILN_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  HOST: z.string().default('127.0.0.1'),
  PORT: intFromEnv(3000, 0, 65535),
  KILN_WORKER_PORT: intFromEnv(3001, 0, 65535),
  KILN_PUBLIC_URL: optionalUrl,
  KILN_DATA_DIR: z.string().default('.kiln'),
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/, error: 'DATABASE_URL must be a postgres:// URL' }).optional()),
  KILN_EMBEDDED_PG_PORT: intFromEnv(54329, 1, 65535),
  KILN_DB_POOL_SIZE: intFromEnv(20, 1, 500),
  KILN_DB_CONNECT_TIMEOUT_MS: intFromEnv(5_000, 100, 120_000),
  REPLICATE_API_TOKEN: optionalString,
  REPLICATE_BASE_URL: optionalUrl,
  KILN_SIMULATOR_PORT: intFromEnv(0, 0, 65535),
  KILN_SIMULATOR_LATENCY_MS: z
    .string()
    .regex(/^\d+-\d+$/, 'KILN_SIMULATOR_LATENCY_MS must look like 800-2500')
    .default('800-2500'),
  KILN_SIMULATOR_FAILURE_RATE: numberFromEnv(0, 0, 1),
  KILN_WORKER_CONCURRENCY: intFromEnv(8, 1, 1000),
  KILN_POLL_CONCURRENCY: intFromEnv(8, 1, 1000),
  KILN_RENDER_CONCURRENCY: intFromEnv(os.availableParallelism(), 1, 256),
  REPLICATE_WEBHOOK_SECRET: optionalString.pipe(z.string().startsWith('whsec_', 'REPLICATE_WEBHOOK_SECRET must look like whsec_<base64>').optional()),
  KILN_WEBHOOK_BACKSTOP_SECONDS: intFromEnv(60, 1, 3600),
  KILN_WEBHOOKS: z.enum(['auto', 'off'], { error: 'KILN_WEBHOOKS must be auto or off' }).default('auto'),
  KILN_DEADLINE_SECONDS: z.coerce.number().int().min(10).max(24 * 3600).optional(),
  KILN_PREDICTION_TIMEOUT_SECONDS: intFromEnv(600, 5, 24 * 3600),
  KILN_INPUT_FILE_REUSE_MARGIN_SECONDS: z.coerce.number().int().min(0).max(23 * 3600).optional(),
  KILN_RETRY_LIMIT: intFromEnv(5, 0, 50),
  KILN_RETRY_DELAY_SECONDS: intFromEnv(2, 1, 3600),
  KILN_RETRY_DELAY_MAX_SECONDS: intFromEnv(120, 1, 24 * 3600),
  // pg-boss 12 takes no heartbeat under 10 s.
  KILN_JOB_HEARTBEAT_SECONDS: intFromEnv(10, 10, 600),
  KILN_PROVIDER_TIMEOUT_MS: intFromEnv(30_000, 100, 120_000),
  KILN_PROVIDER_MAX_ATTEMPTS: intFromEnv(4, 1, 20),
  KILN_PROVIDER_MAX_CONCURRENT_CALLS: intFromEnv(64, 1, 10_000),
  KILN_PROVIDER_CREATES_PER_MINUTE: numberFromEnv(600, 0.1, 1_000_000),
  KILN_PROVIDER_READS_PER_MINUTE: numberFromEnv(3000, 0.1, 1_000_000),
  KILN_PROVIDER_CREATE_BURST: intFromEnv(10, 1, 100_000),
  KILN_PROVIDER_READ_BURST: intFromEnv(50, 1, 100_000),
  KILN_PROVIDER_MAX_WAIT_MS: intFromEnv(2_000, 0, 600_000),
  KILN_TENANT_IN_PROGRESS_CAP: intFromEnv(1000, 1, 1_000_000),
  KILN_PRIORITY_AGING_SECONDS: numberFromEnv(30, 0, 24 * 3600),
  KILN_PROVIDER_BREAKER_FAILURES: intFromEnv(10, 1, 10_000),
  KILN_PROVIDER_BREAKER_HALF_OPEN_MS: intFromEnv(10_000, 100, 3_600_000),
  KILN_MAX_BODY_BYTES: intFromEnv(4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  KILN_MAX_DOWNLOAD_BYTES: intFromEnv(32 * 1024 * 1024, 1024, 512 * 1024 * 1024),
  KILN_MAX_INPUT_PIXELS: intFromEnv(16_000_000, 1, 268_402_689),
  KILN_DOWNLOAD_TIMEOUT_MS: intFromEnv(60_000, 1000, 600_000),
  KILN_MAX_SOURCE_BYTES: intFromEnv(20 * 1024 * 1024, 1024, 512 * 1024 * 1024),
  KILN_SOURCE_FETCH_TIMEOUT_MS: intFromEnv(20_000, 1000, 600_000),
  KILN_SOURCE_ALLOW_PRIVATE: z.enum(['true', 'false'], { error: 'KILN_SOURCE_ALLOW_PRIVATE must be true or false' }).default('false'),
  KILN_AUTH_CACHE_MS: intFromEnv(5000, 0, 600_000),
  KILN_SHUTDOWN_GRACE_MS: intFromEnv(10_000, 0, 600_000),
  KILN_TOKEN_SECRET: optionalString.pipe(z.string().min(32, 'KILN_TOKEN_SECRET must be at least 32 characters').optional()),
  KILN_REALTIME_MAX_BUFFERED: intFromEnv(1000, 10, 100_000),
  KILN_REALTIME_MAX_SOCKET_BUFFER_BYTES: intFromEnv(4 * 1024 * 1024, 1024, 512 * 1024 * 1024),
  KILN_WS_PING_MS: intFromEnv(30_000, 100, 600_000),
  KILN_WS_PONG_WAIT_MS: intFromEnv(10_000, 100, 600_000),
  KILN_WS_MAX_SUBSCRIPTIONS: intFromEnv(100, 1, 100_000),
  KILN_WS_IDLE_MS: intFromEnv(60_000, 100, 24 * 3600_000),
  KILN_HTTP_HEADERS_TIMEOUT_MS: intFromEnv(10_000, 100, 600_000),
  KILN_HTTP_REQUEST_TIMEOUT_MS: intFromEnv(30_000, 100, 3600_000),
  KILN_HTTP_IDLE_TIMEOUT_MS: intFromEnv(60_000, 100, 3600_000),
  KILN_ADMIN_TOKEN: optionalString.pipe(z.string().min(32, 'KILN_ADMIN_TOKEN must be at least 32 characters').optional()),
  KILN_LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  KILN_LOG_FORMAT: z.enum(LOG_FORMATS, { error: 'KILN_LOG_FORMAT must be auto, json or pretty' }).default('auto'),
  KILN_RETAIN_EVENTS_DAYS: intFromEnv(30, 0, 36_500),
  KILN_RETAIN_GENERATIONS_DAYS: intFromEnv(0, 0, 36_500),
  KILN_RETAIN_JOBS_HOURS: intFromEnv(24, 1, 24 * 365),
  KILN_RETENTION_CRON: z.string().trim().min(1).default('*/10 * * * *'),
  KILN_STORAGE: z.enum(['local', 's3'], { error: 'KILN_STORAGE must be local or s3' }).default('local'),
  KILN_S3_BUCKET: optionalString,
  KILN_S3_PREFIX: z
    .string()
    .default('')
    .refine((prefix) => !prefix.startsWith('/'), 'KILN_S3_PREFIX must not start with /'),
  KILN_S3_ENDPOINT: optionalUrl,
  KILN_S3_REGION: optionalString,
  AWS_REGION: optionalString,
  KILN_S3_FORCE_PATH_STYLE: z.enum(['true', 'false'], { error: 'KILN_S3_FORCE_PATH_STYLE must be true or false' }).optional(),
  KILN_S3_ACCESS_KEY_ID: optionalString,
  KILN_S3_SECRET_ACCESS_KEY: optionalString,
  KILN_S3_CHECKSUMS: z.enum(['when-supported', 'when-required'], { error: 'KILN_S3_CHECKSUMS must be when-supported or when-required' }).default('when-supported'),
  KILN_METRICS_TENANT_LABELS: z.enum(['on', 'off'], { error: 'KILN_METRICS_TENANT_LABELS must be on or off' }).default('off'),
}).refine((env) => !env.REPLICATE_BASE_URL || env.REPLICATE_API_TOKEN, {
  path: ['REPLICATE_API_TOKEN'],
  message: 'REPLICATE_API_TOKEN is required with REPLICATE_BASE_URL (for `npm run simulator`, the token it prints)',
}).refine((env) => env.KILN_STORAGE !== 's3' || env.KILN_S3_BUCKET, {
  path: ['KILN_S3_BUCKET'],
  message: 'KILN_S3_BUCKET is required with KILN_STORAGE=s3',
}).refine((env) => !env.KILN_S3_ACCESS_KEY_ID === !env.KILN_S3_SECRET_ACCESS_KEY, {
  path: ['KILN_S3_SECRET_ACCESS_KEY'],
  message: 'KILN_S3_ACCESS_KEY_ID and KILN_S3_SECRET_ACCESS_KEY go together (or leave both unset for the SDK\'s usual credentials)',
}).refine((env) => env.KILN_HTTP_HEADERS_TIMEOUT_MS <= env.KILN_HTTP_REQUEST_TIMEOUT_MS, {
  path: ['KILN_HTTP_HEADERS_TIMEOUT_MS'],
  message: 'KILN_HTTP_HEADERS_TIMEOUT_MS must not exceed KILN_HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)',
});

/** The variables Kiln reads, all optional strings as in process.env. */
export const REPLICATE_API_URL = 'https://api.replicate.com/v1';

export type Environment = Partial<Record<keyof z.input<typeof environmentSchema>, string>>;

export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`).join('\n');
    throw new ConfigError(`invalid configuration:\n${problems}`);
  }
  const e = parsed.data;
  const [latencyMin = 800, latencyMax = 2500] = e.KILN_SIMULATOR_LATENCY_MS.split('-').map(Number);
  // One provider call's timeout bounds a create; a create with its retries is cut off at
  // `createSettleMs` so that a later attempt can tell when an unanswered one has settled.
  const providerTimeoutMs = e.KILN_PROVIDER_TIMEOUT_MS;
  return {
    role: e.KILN_ROLE,
    /** Development mode shows unexpected errors' messages to clients; it must be asked for. */
    isDev: e.NODE_ENV === 'development',
    host: e.HOST,
    port: e.PORT,
    /**
     * Where a worker-only process (KILN_ROLE=worker) serves /health, /ready and /metrics: beside the
     * API's 3000, so an API and a worker on one machine need no setting (0: any free port).
     */
    workerPort: e.KILN_WORKER_PORT,
    /** Where clients reach this server; asset URLs are built on it. Defaults to the listening address. */
    publicUrl: e.KILN_PUBLIC_URL,
    dataDir: path.resolve(e.KILN_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    embeddedPostgresPort: e.KILN_EMBEDDED_PG_PORT,
    dbPoolSize: e.KILN_DB_POOL_SIZE,
    /** A query that cannot get a connection this soon fails as "database unavailable" instead of hanging. */
    dbConnectTimeoutMs: e.KILN_DB_CONNECT_TIMEOUT_MS,
    provider: {
      /** Without a token Kiln starts its Replicate-compatible simulator and talks to that. */
      apiToken: e.REPLICATE_API_TOKEN,
      baseUrl: e.REPLICATE_BASE_URL ?? REPLICATE_API_URL,
      /** No token and no other endpoint: start the built-in simulator. */
      useSimulator: !e.REPLICATE_API_TOKEN && !e.REPLICATE_BASE_URL,
      /** One HTTP call to the provider; a create answers in well under a second normally. */
      timeoutMs: providerTimeoutMs,
      /** Derived: the bound on a create with its retries (two attempts' timeouts and the backoff between). */
      createSettleMs: providerTimeoutMs * 2 + 5_000,
      /**
       * The provider's rate limits (Replicate: 600 creates and 3,000 other calls per minute),
       * shared by every worker process through the database.
       */
      creates: { perMinute: e.KILN_PROVIDER_CREATES_PER_MINUTE, burst: e.KILN_PROVIDER_CREATE_BURST },
      reads: { perMinute: e.KILN_PROVIDER_READS_PER_MINUTE, burst: e.KILN_PROVIDER_READ_BURST },
      /** A call waits this long at most for its slot; beyond, its job steps aside and comes back. */
      maxRateWaitMs: e.KILN_PROVIDER_MAX_WAIT_MS,
      /** A 429 that names no reset time pauses its budget this long (Replicate's resets are ~seconds). */
      throttledPauseMs: 5_000,
      /** Replicate refuses a Cancel-After below 5 s; a generation closer to its deadline sends 5 s and Kiln ends it itself. */
      minCancelAfterSeconds: 5,
      /**
       * How long one prediction may run (sent as Cancel-After): ten minutes is ample for an image
       * model, warm (seconds) or cold-booting (minutes); time in Kiln's queue does not count.
       */
      predictionTimeoutSeconds: e.KILN_PREDICTION_TIMEOUT_SECONDS,
      retry: {
        /** Tries of one call (the first included); transient failures only, creates only when nothing can exist. */
        maxAttempts: e.KILN_PROVIDER_MAX_ATTEMPTS,
        /** Exponential backoff with equal jitter from here... */
        backoffBaseMs: 250,
        /** ...up to here; a longer wait is better spent back in the queue. */
        backoffMaxMs: 30_000,
      },
      /** Provider calls one process makes at once, and how many more may wait for a turn (then: busy). */
      bulkhead: { maxConcurrentCalls: e.KILN_PROVIDER_MAX_CONCURRENT_CALLS, maxQueuedCalls: 1024 },
      /** The circuit breaker opens after this many failures in a row and lets a probe through after the pause. */
      breaker: { consecutiveFailures: e.KILN_PROVIDER_BREAKER_FAILURES, halfOpenAfterMs: e.KILN_PROVIDER_BREAKER_HALF_OPEN_MS },
      /** Verifies webhooks; by default read from the provider (GET /v1/webhooks/default/secret). */
      webhookSecret: e.REPLICATE_WEBHOOK_SECRET,
      /** With webhooks, a poll still looks this long after a prediction's expected finish. */
      webhookBackstopMs: e.KILN_WEBHOOK_BACKSTOP_SECONDS * 1000,
      /** auto: webhooks whenever the provider can reach us (KILN_PUBLIC_URL, or the built-in simulator); off: polls only. */
      webhooks: e.KILN_WEBHOOKS,
      /** Looking for a create an earlier attempt sent but never stored (see jobs/phases/earlier-create.ts). */
      earlierCreate: {
        /** Pages of recent predictions read back at most (100 each): far more than a settle window holds. */
        maxPages: 50,
        /** Kiln's and the provider's clocks may disagree this much. */
        clockSkewMs: 60_000,
      },
      /** Input images uploaded to the provider's Files API once and named by URL (jobs/phases/input-files.ts). */
      inputFiles: {
        /**
         * A file is reused only while it lives at least this much longer: the model reads it when
         * its prediction starts, which may be up to a prediction's run limit after the create.
         */
        reuseMarginSeconds: e.KILN_INPUT_FILE_REUSE_MARGIN_SECONDS ?? Math.max(3600, e.KILN_PREDICTION_TIMEOUT_SECONDS * 2),
        /** Replicate keeps a file 24 hours; assumed when its answer names no expiry. */
        assumedLifetimeSeconds: 24 * 3600,
      },
    },
    simulator: {
      port: e.KILN_SIMULATOR_PORT,
      latencyMs: { min: latencyMin, max: Math.max(latencyMin, latencyMax) },
      failureRate: e.KILN_SIMULATOR_FAILURE_RATE,
    },
    /** pg-boss, in schema `pgboss` of the same database. */
    queue: {
      /** Its own connections, beside Kiln's pool: fetches, completions and maintenance. */
      poolSize: 10,
      /** Each phase is one short step; a job running longer than this is taken back. */
      jobExpireSeconds: 300,
      /** A worker that dies is noticed by its missing heartbeats within about twice this. */
      heartbeatSeconds: e.KILN_JOB_HEARTBEAT_SECONDS,
      /** How often jobs of dead workers are found and retried (pg-boss's per-queue monitor). */
      superviseIntervalSeconds: 5,
      /** How fresh the backlog count is that fetch loops read (pg-boss caches it). */
      queueCacheIntervalSeconds: 2,
      /** A delayed job (a poll, a deferral) wakes its loop this long after it is due: past it on the database's clock, and wakes this close together share one. */
      dueWakeMarginMs: 10,
      /** Retries of ending a generation whose job died for good (a database write). */
      deadLetterRetryLimit: 5,
      /** While the database is away pg-boss reports every failed loop; one report per this long is enough. */
      outageReportEveryMs: 10_000,
      /**
       * Finished jobs (completed, failed, canceled) are deleted this long after they end (pg-boss's
       * deleteAfterSeconds): the generation row and its events are the record; a day is left to look into an incident.
       */
      finishedJobsKeepSeconds: e.KILN_RETAIN_JOBS_HOURS * 3600,
      /**
       * A job still waiting this long is deleted (pg-boss's retentionSeconds): its default, two weeks,
       * far past any backlog — Kiln's queued work waits in its own table, and jobs live seconds to minutes.
       */
      waitingJobsKeepSeconds: 14 * 24 * 3600,
      /** A retention run's job is taken back after this: well past the run's own time budget. */
      retentionJobExpireSeconds: 900,
    },
    /** What is pruned, and how gently (see jobs/retention/pruner.ts). */
    retention: {
      /** pg-boss cron (UTC): every ten minutes keeps each run small. One process runs it at a time. */
      cron: e.KILN_RETENTION_CRON,
      /**
       * Events of final generations: the realtime replay needs minutes, and `status` lists a
       * generation's stages; a month covers any support question. 0: kept forever.
       */
      eventsDays: e.KILN_RETAIN_EVENTS_DAYS > 0 ? e.KILN_RETAIN_EVENTS_DAYS : undefined,
      /** Finished generations with their assets and objects: the tenants' deliverables, so kept unless the operator says. 0: kept forever. */
      generationsDays: e.KILN_RETAIN_GENERATIONS_DAYS > 0 ? e.KILN_RETAIN_GENERATIONS_DAYS : undefined,
      /** One statement deletes at most this many rows: tens of milliseconds, short locks, few round trips. */
      batchSize: 1_000,
      /** Between two batches: lets the hot path's writes and vacuum breathe. */
      pauseMs: 100,
      /** A run stops after this; the next goes on (well within the run's job expiry). */
      maxRunMs: 5 * 60_000,
      /** Objects deleted per transaction: their keys stay locked meanwhile, and a completion that names one waits. */
      objectBatchSize: 100,
      /** An orphaned key waits this long: far longer than a completion's transaction, so an asset being recorded as its key is orphaned is seen. */
      orphanGraceSeconds: 60,
      /** A deleted object's tombstone stays this long: far past a job's expiry, so a worker that found the object before it went and records it after still stores it again. */
      tombstoneSeconds: 24 * 3600,
    },
    worker: {
      concurrency: { create: e.KILN_WORKER_CONCURRENCY, poll: e.KILN_POLL_CONCURRENCY, finish: e.KILN_RENDER_CONCURRENCY },
      /** Deadline of a generation that asks for none; unset: none, so waiting in the queue never fails a generation. */
      deadlineSeconds: e.KILN_DEADLINE_SECONDS,
      /** Job retries of a failed step, with exponential backoff and jitter from `delaySeconds` up to `delayMaxSeconds`. */
      retry: { limit: e.KILN_RETRY_LIMIT, delaySeconds: e.KILN_RETRY_DELAY_SECONDS, delayMaxSeconds: e.KILN_RETRY_DELAY_MAX_SECONDS },
      /** How each phase's jobs are fetched (see jobs/generation-worker.ts). */
      pickup: {
        /** Fetch loops of the create phase: two, so one slow batch does not hold up the next pickup. */
        createLoops: 2,
        /** Seconds between backstop fetches: delayed jobs (polls, retries, deferrals) send no NOTIFY when due. */
        backstopSeconds: { create: 2, poll: 1, finish: 2, cancel: 5, dead: 5 },
        /** pg-boss's fetch interval where LISTEN/NOTIFY does not apply (its minimum is 0.5). */
        pollingIntervalSeconds: 1,
        /** Cancels at the provider one process sends at once (rare, one read each). */
        cancelConcurrency: 4,
      },
      polls: {
        /** The soonest poll: about a fast model's run time. */
        initialMs: 250,
        /** Polls back off by this factor up to `maxMs`, so a slow model costs few reads. */
        backoffFactor: 1.5,
        maxMs: 2000,
        /** The first poll comes at this share of the model's typical duration (learnt), so most need one poll. */
        firstAtShareOfTypical: 0.8,
        /** Weight of each new observation (the provider's time from create to end of a success) in a model's typical duration (a moving average). */
        typicalWeight: 0.2,
        /** Polls may use this share of the read budget; the rest stays free for cancels and lookups. */
        shareOfReads: 0.8,
        /** How long a count of predictions in flight (for spacing) is reused. */
        awaitingCountTtlMs: 5_000,
      },
      /** The dispatcher: hands queued work to the create phase at the budget's pace, fairly (see jobs/dispatch/). */
      dispatch: {
        /** Create slots are booked this far ahead: covers a job's pickup; short, since a worker slot waits for its slot. */
        horizonMs: 500,
        /** Ticks this often while work waits: about half the horizon, so slots are booked before they come due. */
        tickMs: 200,
        /** Idle, it looks this often (a NOTIFY of new work wakes it at once; this covers a lost one, or a dispatcher that died). */
        idleMs: 1_000,
        /** Dispatches per tick at most: far above what a horizon of the provider's budget holds (600/min: 5). */
        maxPerTick: 200,
        /** Priority ages: a priority point is worth this many seconds of waiting, so low-priority work waits at most 20 points × this behind a stream of higher. */
        agingSeconds: e.KILN_PRIORITY_AGING_SECONDS,
        /** Each tenant's share of the create budget while it has work waiting, by tier (relative). */
        // Every tier has a weight (a new tier does not compile without one); read by any tier name.
        tierWeights: { free: 1, standard: 2, pro: 4 } satisfies Record<TenantTier, number> as Record<string, number>,
        /** A tier not listed above. */
        defaultWeight: 1,
        /**
         * Generations one tenant may have dispatched or running at once, so one tenant cannot hold
         * every prediction; high enough that a tenant alone still uses the whole create budget
         * (600 creates/min × predictions of up to a minute is 600 in flight).
         */
        inProgressCap: e.KILN_TENANT_IN_PROGRESS_CAP,
      },
      defer: {
        /** The shortest wait of a deferred job (a budget or breaker that frees up at once still gets a breath). */
        minMs: 250,
        /** A deferred job's wait is stretched by up to this share, so deferred jobs do not return in a herd. */
        jitter: 0.2,
      },
      /** Downloading one provider output. */
      downloadTimeoutMs: e.KILN_DOWNLOAD_TIMEOUT_MS,
      /** sharp's own limit on one render. */
      renderTimeoutSeconds: 60,
    },
    api: {
      /** Slow and half-open HTTP clients are let go. */
      http: {
        /** Headers must arrive within this, the whole request within the next (slowloris); 4 MiB takes seconds on a slow link. */
        headersTimeoutMs: e.KILN_HTTP_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: e.KILN_HTTP_REQUEST_TIMEOUT_MS,
        /** A socket with no traffic either way this long is closed (a client that stopped reading a response, or vanished). */
        idleSocketTimeoutMs: e.KILN_HTTP_IDLE_TIMEOUT_MS,
        /** A kept-alive connection waits this long for its next request: a client reuses it within ms, or not at all. */
        keepAliveTimeoutMs: 5_000,
        /** How often Node looks for requests past those timeouts (its default, 30 s, lets a 10 s timeout run to 40). */
        timeoutCheckIntervalMs: 1_000,
      },
      /** Calls one HTTP request may carry: the client-sdk batches up to this many; more would let one request dodge other limits. */
      maxCallsPerHttpRequest: 20,
      /** An open subscription's key is verified again no sooner than this (and a check that met a database outage is retried after it). */
      credentialRecheckMs: 1_000,
      /** The operator's admin token for `admin.*` procedures; unset: those procedures are off. */
      adminToken: e.KILN_ADMIN_TOKEN,
      /** Verified API keys kept per process at most (the oldest go first). */
      authCacheMaxEntries: 10_000,
      /** An idempotency key (generate, batch) is remembered this long: any retry comes sooner, and a key can then be used again. */
      idempotencyKeySeconds: 24 * 3600,
      /**
       * What each tier may send (a batch counts its items), across all API processes; a tenant
       * can have its own (`tenants set`). Far above the provider's 600 creates/min: the queue
       * takes bursts and backlogs; this stops one key from flooding the API.
       */
      requestLimits: {
        // Every tier has a limit (a new tier does not compile without one); a burst of 1,000 is a whole batch.
        tiers: {
          free: { perMinute: 600, burst: 500 },
          standard: { perMinute: 6_000, burst: 1_000 },
          pro: { perMinute: 60_000, burst: 10_000 },
        } satisfies Record<TenantTier, { perMinute: number; burst: number }> as Record<string, { perMinute: number; burst: number }>,
        /** A tier not listed above. */
        defaultLimit: { perMinute: 600, burst: 500 },
        /** Budgets that are full again are dropped this often (many subjects would otherwise pile up rows). */
        pruneEveryMs: 60_000,
      },
      webhooks: {
        /** A prediction's JSON is a few KB; anything near this is not one. */
        maxBodyBytes: 1024 * 1024,
        /** Up to this much of an oversized body is read and dropped, so the sender gets its 413 rather than a reset. */
        maxDrainBytes: 8 * 1024 * 1024,
        /** Replicate retries a webhook for about a minute: ids older than this are not needed to spot repeats. */
        keepDeliveriesSeconds: 3600,
        pruneEveryMs: 10 * 60_000,
        /** After failing to read the webhook secret from the provider, ask again no sooner than this. */
        secretRetryMs: 30_000,
      },
      /** Generations served from an identical one of their tenant (an earlier success, or work they joined). */
      cache: {
        /**
         * They are charged this share of what the model reserves (its image price, or its GPU
         * seconds' reserve): no provider call is made, but storage and rendering are, and the
         * first requester paid for the image.
         */
        priceShare: 0.1,
      },
      groupCommit: {
        /** Rows in one shared transaction at most: big enough to pay one commit for a burst, small enough to stay a short transaction. */
        maxItems: 200,
        /** Shared transactions in flight at once: two overlap round trips; more would make smaller groups. */
        maxConcurrentFlushes: 2,
      },
    },
    limits: {
      maxBodyBytes: e.KILN_MAX_BODY_BYTES,
      maxDownloadBytes: e.KILN_MAX_DOWNLOAD_BYTES,
      maxInputPixels: e.KILN_MAX_INPUT_PIXELS,
    },
    /** Image sources: uploads and URLs a tenant names (see server/source-service.ts, jobs/sources/). */
    sources: {
      /**
       * The largest image, uploaded or fetched: a phone photo is 3–12 MB and a large PNG more;
       * one request holds it in memory, so not much more than that.
       */
      maxBytes: e.KILN_MAX_SOURCE_BYTES,
      /** An upload's request body may be this much over `maxBytes`: multipart framing and the filename field. */
      uploadOverheadBytes: 64 * 1024,
      /**
       * Of an upload over the limit, up to this much more is read and dropped so the client gets its
       * 413 (a client that is still sending sees a reset otherwise); a body declared larger is refused at once.
       */
      uploadDrainBytes: 8 * 1024 * 1024,
      /** Pixels, checked from the header before anything decodes: the renderer's limit for provider outputs, which decodes these too. */
      maxPixels: e.KILN_MAX_INPUT_PIXELS,
      fetch: {
        /** A whole URL fetch, every redirect and the body included: the API call waits for it; 20 MB at a few MB/s fits. */
        totalTimeoutMs: e.KILN_SOURCE_FETCH_TIMEOUT_MS,
        /** Connecting and the response's headers, per hop: an image host answers in well under a second. */
        headersTimeoutMs: 5_000,
        /** Redirects followed: CDNs use one or two (to https, to a signed URL); more is a loop or a maze. */
        maxRedirects: 5,
        /** Names Kiln to the image host's logs. */
        userAgent: 'Kiln-image-sources/1 (+fetching an image a tenant named)',
      },
      /**
       * Development only: URL sources may reach loopback, private (10/8, 172.16/12, 192.168/16,
       * fc00::/7) and carrier-grade NAT addresses, where local test servers live. Never link-local
       * or metadata addresses. Off by default, and not implied by NODE_ENV: a guard that a mode
       * switches off quietly is off in the one deployment that forgot the mode.
       */
      allowPrivateAddresses: e.KILN_SOURCE_ALLOW_PRIVATE === 'true',
    },
    /** The product-photo optimiser (operation 'optimize'). */
    optimizer: {
      /** A photo whose short edge is below this is upscaled first (a request may ask otherwise): 1024 px is what marketplaces ask of zoomable product images. */
      targetShortEdge: 1024,
      /** The margin left around a cut-out product, as a share of its longer edge: close framing without touching the edge. */
      marginShare: 0.06,
    },
    realtime: {
      /** Events waiting for one slow subscriber before its connection is closed (it resumes). */
      maxBufferedEvents: e.KILN_REALTIME_MAX_BUFFERED,
      /** Bytes waiting in one WebSocket's send buffer before its reader counts as too slow. */
      maxSocketBufferBytes: e.KILN_REALTIME_MAX_SOCKET_BUFFER_BYTES,
      /** Heartbeat: a quiet connection is pinged, and closed if no pong comes. */
      pingMs: e.KILN_WS_PING_MS,
      pongWaitMs: e.KILN_WS_PONG_WAIT_MS,
      /** How often a watched, queued generation's position is sent. */
      queueUpdateMs: 2_000,
      /** The largest message a client may send over a WebSocket (subscribe calls are small). */
      maxMessageBytes: 1024 * 1024,
      /** Subscriptions one WebSocket may hold: a page of `list` (100) watched one by one; each costs tens of KB. */
      maxSubscriptionsPerConnection: e.KILN_WS_MAX_SUBSCRIPTIONS,
      /**
       * Messages in one WebSocket frame: room to stop and start a connection's worth at once (the
       * client sends what it queued in one tick as one frame, and every subscription in one when it reconnects).
       */
      maxMessagesPerFrame: 2 * e.KILN_WS_MAX_SUBSCRIPTIONS,
      /** A WebSocket holding no subscription and sending nothing this long is closed (the client-sdk closes its own after 5 s). */
      idleMs: e.KILN_WS_IDLE_MS,
      /** Events read from the feed per query: enough for a burst, small enough to stay a quick read. */
      feedPageSize: 500,
      /** After a failed read of the feed, look again after this. */
      feedRetryMs: 500,
      /**
       * An event behind an older transaction still open is held back (feed order is by
       * transaction): look again this soon, as such transactions mostly end within milliseconds.
       */
      feedHeldBackRetryMs: 5,
      /** The event listener's reconnect waits, doubling from `minMs` to `maxMs` while the database is away. */
      listenerReconnectMs: { minMs: 250, maxMs: 2_000 },
    },
    storage: storageConfig(e, path.resolve(e.KILN_DATA_DIR)),
    /** /health and /ready (see server/health.ts). */
    health: {
      /** A readiness answer is reused this long: probes every second from several places cost one database round trip. */
      readyCacheMs: 1_000,
    },
    /** /metrics (see server/metrics/). */
    metrics: {
      /**
       * Queue depth, waiting ages, predictions in flight and budgets are read from the database
       * when scraped and reused this long: one query per scrape interval however many scrape.
       */
      snapshotCacheMs: 2_000,
      /** A scrape waits this long at most for those reads, then answers without them: a slow database must not stall the scrape. */
      snapshotTimeoutMs: 2_000,
      /** Tenant ids as a label of the per-tenant series (generations, credits): off by default, since tenants are unbounded. */
      tenantLabels: e.KILN_METRICS_TENANT_LABELS === 'on',
      /** How finely the event loop's delay is sampled (ms): prom-client's default, cheap. */
      eventLoopPrecisionMs: 10,
      buckets: {
        /** API calls: a status read is milliseconds, a batch of 1,000 a tenth of a second, a slow one seconds. */
        requestSeconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        /** Jobs, waits and generations: a poll is milliseconds, a render seconds, a backlog's wait minutes. */
        jobSeconds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
        /** One provider call, up to its timeout (30 s by default) and a create with its retries. */
        providerCallSeconds: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        /** A wait for a budget slot: none, or up to KILN_PROVIDER_MAX_WAIT_MS (2 s by default). */
        budgetWaitSeconds: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      },
    },
    /** Signs scoped tokens; by default a random secret kept in the database, shared by all API processes. */
    tokenSecret: e.KILN_TOKEN_SECRET ? Buffer.from(e.KILN_TOKEN_SECRET) : undefined,
    authCacheMs: e.KILN_AUTH_CACHE_MS,
    shutdownGraceMs: e.KILN_SHUTDOWN_GRACE_MS,
    log: {
      level: e.KILN_LOG_LEVEL,
      /** JSON lines for machines; `auto` switches to readable lines when stderr is a terminal (a person is watching). */
      format: e.KILN_LOG_FORMAT,
      /**
       * An incoming `x-request-id` longer than this (or with characters outside [A-Za-z0-9._:/+=@-])
       * is replaced by one of ours: ids are logged on every line, and a client must not fill the log.
       */
      requestIdMaxLength: 128,
      /** /health, /ready and /metrics are scraped every few seconds: their lines are at debug unless they fail. */
      quietPaths: ['/health', '/ready', '/metrics'],
    },
  };
}

type ParsedEnvironment = z.output<typeof environmentSchema>;

/** Where assets are kept: the data folder (one machine), or an S3-compatible bucket (any number). */
function storageConfig(e: ParsedEnvironment, dataDir: string) {
  if (e.KILN_STORAGE === 'local' || !e.KILN_S3_BUCKET) return { kind: 'local' as const, root: path.join(dataDir, 'assets') };
  return {
    kind: 's3' as const,
    bucket: e.KILN_S3_BUCKET,
    prefix: e.KILN_S3_PREFIX,
    endpoint: e.KILN_S3_ENDPOINT,
    /** The SDK insists on one; S3-compatible stores mostly ignore it. */
    region: e.KILN_S3_REGION ?? e.AWS_REGION ?? 'us-east-1',
    /** Another endpoint is most likely a store that wants path-style URLs (MinIO, Ceph…); AWS prefers virtual-hosted. */
    forcePathStyle: e.KILN_S3_FORCE_PATH_STYLE ? e.KILN_S3_FORCE_PATH_STYLE === 'true' : e.KILN_S3_ENDPOINT !== undefined,
    credentials: e.KILN_S3_ACCESS_KEY_ID && e.KILN_S3_SECRET_ACCESS_KEY ? { accessKeyId: e.KILN_S3_ACCESS_KEY_ID, secretAccessKey: e.KILN_S3_SECRET_ACCESS_KEY } : undefined,
    checksums: e.KILN_S3_CHECKSUMS,
    /** A store in reach answers a connect in milliseconds; seconds means it is not there. */
    connectTimeoutMs: 5_000,
    /** An image is a few MB: seconds even on a slow link; longer is a stuck connection. */
    requestTimeoutMs: 30_000,
    /** The SDK retries throttles and 5xx with backoff; a failed put is then retried by its job. */
    maxAttempts: 3,
    /** One finish job stores up to 41 objects at once, a few jobs run side by side, and the API streams besides. */
    maxSockets: 128,
    /** Deletes in flight at once while pruning: quick, and far below any store's request rate. */
    deleteConcurrency: 8,
  };
}

export type KilnConfig = ReturnType<typeof loadConfig>;
export type StorageConfig = KilnConfig['storage'];

export class ConfigError extends Error {
  override name = 'ConfigError';
}
