// Kiln's Prometheus series, in one registry per app (createApp builds it): nothing here is
// module-level, so several apps in one process keep their own counts. Names follow Prometheus's
// conventions: the `kiln_` prefix, base units (seconds, bytes, US dollars), `_total` on
// counters. Labels are bounded sets (procedures, codes, phases, queues, formats); tenant ids
// only when the operator turns them on (KILN_METRICS_TENANT_LABELS).
//
// Two kinds of series: events this process counts as they happen (requests, jobs, provider
// calls — counters only, no I/O), and state of the whole cluster read from the database when
// scraped (queue depth, predictions in flight, the shared budgets), cached briefly; every
// process reports the same cluster values, so dashboards take max() of them, not sum().
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueDepth, QueueDepthState } from '../../db/queue-depth.ts';
import type { BudgetState } from '../../db/rate-limits.ts';
import type { JobMetrics, JobPhase, ServedFrom } from '../../jobs/metrics.ts';
import type { BreakerState } from '../../jobs/provider/policies.ts';
import type { KilnConfig } from '../config.ts';
import { cached, within } from './cached.ts';

/** The plain HTTP routes, as the metrics name them (never the raw path: asset keys are unbounded). */
export type HttpRoute = 'trpc' | 'assets' | 'webhooks' | 'health' | 'ready' | 'metrics' | 'studio' | 'other';

export interface ApiMetrics {
  httpRequest(route: HttpRoute, status: number, seconds: number): void;
  /** One tRPC call (a batched HTTP request carries several), with its final code ('OK' or the tRPC error code). */
  trpcCall(call: { procedure: string; type: string; transport: 'http' | 'ws'; code: string; seconds: number }): void;
  /** Generations written by generate or batch (after their commit), each with how it is served. */
  generationsQueued(rows: readonly { tenantId: string; servedFrom: ServedFrom }[]): void;
  websocketOpened(): void;
  websocketClosed(): void;
  /** One realtime event written to a subscriber's WebSocket. */
  realtimeEventSent(): void;
}

/** What the cluster looks like, read from the database at scrape time. */
export interface ClusterSnapshot {
  queues: QueueDepth[];
  predictionsInFlight: number;
  budgets: (BudgetState & { perMinute: number })[];
}

export interface KilnMetrics {
  readonly registry: Registry;
  readonly jobs: JobMetrics;
  readonly api: ApiMetrics;
  /** Where scrape-time cluster state comes from, and the queues and states that read 0 when they hold no jobs. */
  readCluster(read: () => Promise<ClusterSnapshot>, queues: readonly { queue: string; states: readonly QueueDepthState[] }[]): void;
  /** This process's circuit breaker (worker processes). */
  readBreaker(read: () => BreakerState): void;
  /** The exposition: Prometheus text format. */
  expose(): Promise<{ contentType: string; body: string }>;
}

export type MetricsSettings = KilnConfig['metrics'];

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open', 'isolated'];
const MICRO_USD_PER_USD = 1_000_000;

export function createKilnMetrics(settings: MetricsSettings, options: { onSnapshotError?: (error: unknown) => void } = {}): KilnMetrics {
  const registry = new Registry();
  const registers = [registry];
  const { buckets } = settings;
  const tenantLabel = settings.tenantLabels ? (['tenant'] as const) : ([] as const);
  const withTenant = (labels: Record<string, string>, tenantId: string) => (settings.tenantLabels ? { ...labels, tenant: tenantId } : labels);
  collectDefaultMetrics({ register: registry, prefix: 'kiln_', eventLoopMonitoringPrecision: settings.eventLoopPrecisionMs });

  // HTTP and tRPC.
  const httpRequests = new Counter({ name: 'kiln_http_requests_total', help: 'HTTP requests answered, by route and status code', labelNames: ['route', 'code'], registers });
  const httpSeconds = new Histogram({ name: 'kiln_http_request_duration_seconds', help: 'Time to answer an HTTP request, by route', labelNames: ['route'], buckets: buckets.requestSeconds, registers });
  const trpcCalls = new Counter({ name: 'kiln_trpc_requests_total', help: 'tRPC calls, by procedure, type, transport and result code (OK or the tRPC error code)', labelNames: ['procedure', 'type', 'transport', 'code'], registers });
  const trpcSeconds = new Histogram({ name: 'kiln_trpc_request_duration_seconds', help: 'Time to answer a tRPC call, by procedure', labelNames: ['procedure', 'type', 'transport'], buckets: buckets.requestSeconds, registers });
  const websocketConnections = new Gauge({ name: 'kiln_websocket_connections', help: 'Open WebSocket connections on this process', registers });
  const realtimeEvents = new Counter({ name: 'kiln_realtime_events_sent_total', help: 'Realtime events written to subscribers over WebSocket', registers });

  // Generations, credits, cache.
  const generationsQueued = new Counter({ name: 'kiln_generations_queued_total', help: 'Generations accepted by generate and batch, by how they are served (own work, from the cache, or joined to identical work)', labelNames: ['served_from', ...tenantLabel], registers });
  const generationsSucceeded = new Counter({ name: 'kiln_generations_succeeded_total', help: 'Generations that succeeded, by how they were served', labelNames: ['served_from', ...tenantLabel], registers });
  const creditsCharged = new Counter({ name: 'kiln_credits_charged_usd_total', help: 'Credit charged to metered tenants for generations that succeeded, in US dollars', labelNames: [...tenantLabel], registers });
  const generationSeconds = new Histogram({ name: 'kiln_generation_duration_seconds', help: 'Time from queued to succeeded, by how it was served', labelNames: ['served_from'], buckets: buckets.jobSeconds, registers });
  const generationQueueSeconds = new Histogram({ name: 'kiln_generation_queue_wait_seconds', help: "Time a generation waited in Kiln's queue before its first attempt started", buckets: buckets.jobSeconds, registers });

  // Jobs.
  const jobs = new Counter({ name: 'kiln_jobs_total', help: 'Jobs run, by phase and outcome (failed: retried or dead-lettered by pg-boss)', labelNames: ['phase', 'outcome'], registers });
  const jobSeconds = new Histogram({ name: 'kiln_job_duration_seconds', help: 'Time a job ran, by phase', labelNames: ['phase'], buckets: buckets.jobSeconds, registers });
  const jobWaitSeconds = new Histogram({ name: 'kiln_job_wait_seconds', help: 'Time from when a job was due to when a worker started it, by phase', labelNames: ['phase'], buckets: buckets.jobSeconds, registers });
  const assetsStored = new Counter({ name: 'kiln_assets_stored_total', help: 'Images rendered and stored, by kind (original or variant) and format', labelNames: ['kind', 'format'], registers });
  const assetBytes = new Counter({ name: 'kiln_assets_stored_bytes_total', help: 'Bytes of images stored, by kind and format', labelNames: ['kind', 'format'], registers });

  // The provider.
  const providerCalls = new Counter({ name: 'kiln_provider_calls_total', help: 'Provider calls (retries included), by kind and outcome', labelNames: ['kind', 'outcome'], registers });
  const providerSeconds = new Histogram({ name: 'kiln_provider_call_duration_seconds', help: 'Time of a provider call with its retries, by kind', labelNames: ['kind'], buckets: buckets.providerCallSeconds, registers });
  const providerThrottled = new Counter({ name: 'kiln_provider_throttled_total', help: 'Provider answers 429 (too many requests), by kind of call', labelNames: ['kind'], registers });
  const budgetSlots = new Counter({ name: 'kiln_provider_budget_slots_total', help: "Budget slots this process asked for, by kind and outcome (refused: the call steps aside)", labelNames: ['kind', 'outcome'], registers });
  const budgetWait = new Histogram({ name: 'kiln_provider_budget_wait_seconds', help: 'Time a call waited for its budget slot, by kind', labelNames: ['kind'], buckets: buckets.budgetWaitSeconds, registers });

  const breaker = { read: undefined as (() => BreakerState) | undefined };
  new Gauge({
    name: 'kiln_provider_breaker_state',
    help: "This process's provider circuit breaker: 1 for its current state (worker processes only)",
    labelNames: ['state'],
    registers,
    collect() {
      const state = breaker.read?.();
      if (!state) return;
      for (const candidate of BREAKER_STATES) this.set({ state: candidate }, candidate === state ? 1 : 0);
    },
  });

  // Cluster state, read at scrape time. One read serves every series of one scrape.
  let cluster: { snapshot: () => Promise<ClusterSnapshot | undefined>; queues: readonly { queue: string; states: readonly QueueDepthState[] }[] } | undefined;
  const snapshotErrors = new Counter({ name: 'kiln_metrics_snapshot_errors_total', help: 'Scrapes that could not read cluster state from the database (or not in time)', registers });
  let scrapeSnapshot: Promise<ClusterSnapshot | undefined> | undefined;
  /** Every collect() of one scrape shares one snapshot (collect functions run together, then the scrape ends). */
  const snapshotForScrape = (): Promise<ClusterSnapshot | undefined> => {
    if (!cluster) return Promise.resolve(undefined);
    scrapeSnapshot ??= cluster.snapshot().finally(() => setImmediate(() => (scrapeSnapshot = undefined)));
    return scrapeSnapshot;
  };
  new Gauge({
    name: 'kiln_queue_jobs',
    help: "Jobs per queue and state (queued: due, waiting for a worker; scheduled: due later; active: running); queue kiln-dispatch is generations waiting for a create slot. Cluster-wide",
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      if (!snapshot || !cluster) return;
      for (const { queue, states } of cluster.queues) for (const state of states) this.set({ queue, state }, 0);
      for (const depth of snapshot.queues) this.set({ queue: depth.queue, state: depth.state }, depth.jobs);
    },
  });
  new Gauge({
    name: 'kiln_queue_oldest_age_seconds',
    help: 'Age of the oldest job per queue and state: since it became due (queued) or started (active). Cluster-wide',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      for (const depth of snapshot?.queues ?? []) if (depth.state !== 'scheduled') this.set({ queue: depth.queue, state: depth.state }, depth.oldestSeconds ?? 0);
    },
  });
  new Gauge({
    name: 'kiln_predictions_in_flight',
    help: 'Predictions created at the provider and not yet finished (NaN when the database could not be read for this scrape). Cluster-wide',
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      // A series without labels is always exposed: NaN rather than a 0 that would look like an idle provider.
      this.set(snapshot ? snapshot.predictionsInFlight : Number.NaN);
    },
  });
  new Gauge({
    name: 'kiln_provider_budget_next_slot_seconds',
    help: 'How long a provider call asked for now would wait for its slot, per shared budget (create, read). Cluster-wide',
    labelNames: ['budget'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      for (const budget of snapshot?.budgets ?? []) this.set({ budget: budget.name }, Math.max(0, budget.waitMs) / 1000);
    },
  });
  new Gauge({
    name: 'kiln_provider_budget_paused_seconds',
    help: 'How much longer a shared budget is paused after a 429. Cluster-wide',
    labelNames: ['budget'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      for (const budget of snapshot?.budgets ?? []) this.set({ budget: budget.name }, budget.pausedForMs / 1000);
    },
  });
  new Gauge({
    name: 'kiln_provider_budget_limit_per_second',
    help: "A shared budget's steady rate: the provider's limit, in calls per second",
    labelNames: ['budget'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      for (const budget of snapshot?.budgets ?? []) this.set({ budget: budget.name }, budget.perMinute / 60);
    },
  });
  // The database keeps these counts for every process: exposed as they are there (monotonic).
  new Counter({
    name: 'kiln_provider_budget_granted_total',
    help: 'Slots granted by a shared budget to every process (dispatcher bookings included). Cluster-wide',
    labelNames: ['budget'],
    registers,
    async collect() {
      const snapshot = await snapshotForScrape();
      this.reset();
      for (const budget of snapshot?.budgets ?? []) this.inc({ budget: budget.name }, budget.granted);
    },
  });

  const jobMetrics: JobMetrics = {
    jobRan(phase: JobPhase, outcome, timing) {
      jobs.inc({ phase, outcome });
      jobSeconds.observe({ phase }, timing.ranSeconds);
      jobWaitSeconds.observe({ phase }, timing.waitedSeconds);
    },
    generationStarted(queuedSeconds) {
      generationQueueSeconds.observe(queuedSeconds);
    },
    generationSucceeded({ tenantId, servedFrom, seconds, chargedMicroUsd }) {
      generationsSucceeded.inc(withTenant({ served_from: servedFrom }, tenantId));
      generationSeconds.observe({ served_from: servedFrom }, seconds);
      if (chargedMicroUsd > 0) creditsCharged.inc(withTenant({}, tenantId), chargedMicroUsd / MICRO_USD_PER_USD);
    },
    imagesStored(images) {
      for (const image of images) {
        assetsStored.inc({ kind: image.kind, format: image.format });
        assetBytes.inc({ kind: image.kind, format: image.format }, image.bytes);
      }
    },
    providerCall(kind, outcome, seconds) {
      providerCalls.inc({ kind, outcome });
      providerSeconds.observe({ kind }, seconds);
    },
    providerThrottled(kind) {
      providerThrottled.inc({ kind });
    },
    budgetSlot(kind, waitedSeconds) {
      budgetSlots.inc({ kind, outcome: waitedSeconds === undefined ? 'refused' : 'granted' });
      if (waitedSeconds !== undefined) budgetWait.observe({ kind }, waitedSeconds);
    },
  };

  const apiMetrics: ApiMetrics = {
    httpRequest(route, status, seconds) {
      httpRequests.inc({ route, code: String(status) });
      httpSeconds.observe({ route }, seconds);
    },
    trpcCall({ procedure, type, transport, code, seconds }) {
      trpcCalls.inc({ procedure, type, transport, code });
      trpcSeconds.observe({ procedure, type, transport }, seconds);
    },
    generationsQueued(rows) {
      for (const row of rows) generationsQueued.inc(withTenant({ served_from: row.servedFrom }, row.tenantId));
    },
    websocketOpened: () => websocketConnections.inc(),
    websocketClosed: () => websocketConnections.dec(),
    realtimeEventSent: () => realtimeEvents.inc(),
  };

  return {
    registry,
    jobs: jobMetrics,
    api: apiMetrics,
    readCluster(read, queues) {
      const snapshot = cached(settings.snapshotCacheMs, read);
      cluster = {
        queues,
        // A failed or slow read leaves the cluster series out of this scrape (absent, not stale) and is counted once.
        snapshot: () => {
          let counted = false;
          const failed = () => {
            if (!counted) snapshotErrors.inc();
            counted = true;
            return undefined;
          };
          const read = snapshot.get().catch((error: unknown) => {
            options.onSnapshotError?.(error);
            return failed();
          });
          return within(read, settings.snapshotTimeoutMs, failed);
        },
      };
    },
    readBreaker(read) {
      breaker.read = read;
    },
    async expose() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
