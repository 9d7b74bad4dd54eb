// The realtime benchmark, against real processes on one bench database: a Kiln API
// (KILN_ROLE=api) and a Kiln worker (KILN_ROLE=worker, with its built-in provider simulator).
//  1. memory: the API's RSS with no subscribers, then with N idle ones (one connection each);
//  2. pickup: sequential `generate` calls, each once the previous generation has finished (an
//     idle worker), from the call returning (client clock) to the worker's `started` event (its
//     `at` is PostgreSQL's clock_timestamp(): same machine, same clock);
//  3. delivery: a steady trickle of generations while many subscribers are connected (one
//     connection each), of which some watch all of the tenant's generations — from each event's
//     `at` to its arrival at each of those; every one must get every event exactly once, in
//     feed order — and the rest watch a finished generation and must get none of them. Measured
//     once per number of receivers, from a few to all of the subscribers.
// KILN_BENCH_REALTIME_TRACE=<file> writes <file>.<receivers>: one JSON line per measured event
// (written at, first and last receipt), to line up with a profile or a trace of the server.
import http from 'node:http';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type pg from 'pg';
import { createKilnClient } from '../../client-sdk/index.ts';
import { cpuSnapshot, cpuUse, processTicks, TICK_MS } from './cpu.ts';
import { provisionDatabase, type BenchDatabase } from './database.ts';
import { UsageError, numberFlag, readFlags, sleep, withTimeout, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { post, resultData, summarise, type LatencySummary } from './load.ts';
import { residentKb, type Child } from './processes.ts';
import { calibratedWallClock, createSubscriberPool, type Subscriber } from './realtime-subscribers.ts';
import { realtimeReport } from './realtime-report.ts';
import { startKiln, startKilnWorker, type ServerUnderTest } from './servers.ts';
import { integer, ms } from './table.ts';

export interface RealtimeOptions {
  pickupRequests: number;
  pickupWarmup: number;
  /** Pause after one generation has finished (or started) before the next generate. */
  pickupGapMs: number;
  /** What the next pickup call waits for: the previous generation finished (an idle worker) or only started. */
  pickupAfter: 'finished' | 'started';
  /** Connected subscribers during the delivery measurement. */
  subscribers: number;
  /** Of those, how many receive each event (watch all of the tenant's generations); one measurement each, ascending. */
  receivers: number[];
  /** Generations per second during the delivery measurement. */
  rate: number;
  durationSeconds: number;
  /** Idle subscriber counts at which the API's memory is read, ascending. */
  idle: number[];
  /** KILN_SIMULATOR_LATENCY_MS of the worker, "min-max". */
  simulatorLatencyMs: string;
  /** API processes on the one database; delivery subscribers are spread over them in turn. */
  apiProcesses: number;
  /** KILN_WORKER_CONCURRENCY of the worker; undefined: Kiln's default. */
  workerConcurrency: number | undefined;
}

const REQUEST_TIMEOUT_MS = 10_000;
const RSS_SAMPLES = 5;
const FINAL_STATES = ['succeeded', 'failed', 'canceled'];
const SUBSCRIBE_SETTLE_MS = 1000;
const PACER_WAIT_MS = 3000;

export const realtimeBenchmark: Benchmark = {
  summary: 'pickup latency, event delivery latency to many WebSocket subscribers, API memory per idle subscriber',
  usage: [
    '      --requests N           sequential generate calls for pickup latency (default 200, after 10 warm-up)',
    '      --gap MS               pause before the next pickup call (default 100)',
    '      --after finished|started  the next pickup call waits for the previous generation to finish (default: an idle worker) or only to start',
    '      --subscribers N        connected subscribers for delivery latency (default 1000)',
    '      --receivers N,N        of those, how many receive every event; the rest watch one finished generation (default 10,100,all)',
    '      --api-processes N      API processes the delivery subscribers are spread over (default 1)',
    '      --rate N               generations per second while they listen (default 3)',
    '      --duration SECONDS     how long that trickle lasts (default 15)',
    '      --idle N,N             idle subscriber counts for the memory figure (default 1000,5000)',
    '      --latency MIN-MAX      the worker simulator\'s latency in ms (default 20-40)',
    '      --worker-concurrency N KILN_WORKER_CONCURRENCY of the worker process (default: Kiln\'s default)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['requests', 'gap', 'after', 'subscribers', 'receivers', 'api-processes', 'rate', 'duration', 'idle', 'latency', 'worker-concurrency']);
    const idleText = text('idle') ?? '1000,5000';
    const idle = idleText.split(',').map((part) => numberFlag('idle', part, 0, { min: 1, max: 10_000, integer: true }));
    if (idle.some((count, index) => index > 0 && count <= (idle[index - 1] ?? 0))) throw new UsageError(`--idle must list ascending counts (got "${idleText}")`);
    const latency = text('latency') ?? '20-40';
    const bounds = /^(\d{1,5})-(\d{1,5})$/.exec(latency);
    if (!bounds || Number(bounds[1]) > Number(bounds[2])) throw new UsageError(`--latency must look like 20-40 (got "${latency}")`);
    const after = text('after') ?? 'finished';
    if (after !== 'finished' && after !== 'started') throw new UsageError(`--after must be finished or started (got "${after}")`);
    const subscribers = numberFlag('subscribers', text('subscribers'), 1000, { min: 1, max: 10_000, integer: true });
    const receiversText = text('receivers');
    const receivers = receiversText
      ? receiversText.split(',').map((part) => numberFlag('receivers', part, 0, { min: 1, max: subscribers, integer: true }))
      : [...new Set([10, 100, subscribers].filter((count) => count <= subscribers))];
    if (receivers.some((count, index) => index > 0 && count <= (receivers[index - 1] ?? 0))) throw new UsageError(`--receivers must list ascending counts (got "${receiversText}")`);
    const options: RealtimeOptions = {
      pickupRequests: numberFlag('requests', text('requests'), 200, { min: 10, max: 2000, integer: true }),
      pickupWarmup: 10,
      pickupGapMs: numberFlag('gap', text('gap'), 100, { min: 0, max: 5000, integer: true }),
      pickupAfter: after,
      subscribers,
      receivers,
      apiProcesses: numberFlag('api-processes', text('api-processes'), 1, { min: 1, max: 8, integer: true }),
      rate: numberFlag('rate', text('rate'), 3, { min: 0.2, max: 100 }),
      durationSeconds: numberFlag('duration', text('duration'), 15, { min: 1, max: 300 }),
      idle,
      simulatorLatencyMs: latency,
      workerConcurrency: text('worker-concurrency') === undefined ? undefined : numberFlag('worker-concurrency', text('worker-concurrency'), 16, { min: 1, max: 1000, integer: true }),
    };
    // Start-up, the three phases and shutdown, generously: the hard stop is for a hang.
    // Waiting for each generation to finish takes its polls too (a worker without webhooks).
    const pickupMs = (options.pickupRequests + options.pickupWarmup) * (options.pickupGapMs + (after === 'finished' ? 5000 : 500));
    const memoryMs = (idle.length + 2) * 10_000 + (idle.at(-1) ?? 0) * 10;
    const deliveryMs = receivers.length * (options.durationSeconds * 1000 + options.subscribers * 20 + 90_000);
    return { budgetMs: 90_000 + memoryMs + pickupMs + deliveryMs, run: (context) => runRealtime(options, context) };
  },
};

export interface PickupRun {
  requests: number;
  warmup: number;
  gapMs: number;
  after: RealtimeOptions['pickupAfter'];
  /** generate returned (client) → `started` event's `at` (database). */
  latencyMs: LatencySummary;
  /** `queued` event's `at` → `started` event's `at`, both on the database's clock. */
  fromQueuedEventMs: LatencySummary;
  /** The generate call itself, client-side. */
  generateRoundTripMs: LatencySummary;
  /** Returned → started below 0: the worker began before the client had the answer. */
  negative: number;
  /** Calls whose previous generation the pacing subscription did not see within pacerWaitMs (found in the table instead). */
  pacerFallbacks: number;
  pacerWaitMs: number;
}

export interface DeliveryRun {
  /** Connected subscribers. */
  subscribers: number;
  /** Of those, the ones watching all of the tenant's generations: each event goes to all of them. */
  receivers: number;
  /** Events of the measured generations that reached a subscriber watching another generation (must be 0). */
  strayDeliveries: number;
  rate: number;
  durationSeconds: number;
  generations: number;
  /** Events of the measured generations (what each subscriber should get). */
  events: number;
  stages: Record<string, number>;
  expectedDeliveries: number;
  deliveries: number;
  missing: number;
  duplicates: number;
  outOfOrder: number;
  /** Subscribers that were started more than once (their client reconnected). */
  resubscribed: number;
  subscriberErrors: number;
  firstError: string | undefined;
  /** Event `at` → arrival at a subscriber, over every delivery. */
  latencyMs: LatencySummary;
  /** Per event: to its first and to its last subscriber. */
  firstReceiptMs: LatencySummary;
  lastReceiptMs: LatencySummary;
  p99ByStageMs: Record<string, number>;
  windowSeconds: number;
  /** CPU µs per delivery (whole window, so including feed reads and the worker's own events). */
  cpuPerDeliveryUs: { api: number | undefined; bench: number };
  /** CPU ms per second of the window (1000 = one whole core), undefined where /proc can't tell. */
  cpu: { api: number | undefined; worker: number | undefined; postgres: number | undefined; bench: number; machineBusy: number | undefined };
}

export interface MemoryPoint {
  subscribers: number;
  rssKb: number;
  samplesKb: number[];
}

export interface ClockCheck {
  /** PostgreSQL's clock_timestamp() minus this process's clock, at the best of a few reads. */
  offsetMs: number;
  /** ± half the round trip of that read. */
  uncertaintyMs: number;
}

async function runRealtime(options: RealtimeOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const loadAverageBefore = os.loadavg()[0] ?? Number.NaN;
  const database = await provisionDatabase(scope, progress);

  progress('kiln api: starting (KILN_ROLE=api)');
  const api = await startKiln(database.url, scope, signal, { keyLabel: 'realtime benchmark', env: { KILN_ROLE: 'api' } });
  progress(`kiln worker: starting (KILN_ROLE=worker, simulator latency ${options.simulatorLatencyMs} ms)`);
  const worker = await startKilnWorker(database.url, scope, signal, {
    env: {
      KILN_SIMULATOR_LATENCY_MS: options.simulatorLatencyMs,
      ...(options.workerConcurrency === undefined ? {} : { KILN_WORKER_CONCURRENCY: String(options.workerConcurrency) }),
    },
  });
  // More API processes share the subscribers; the first also serves generate, pickup and memory.
  const apis = [api];
  for (let index = 1; index < options.apiProcesses; index += 1) {
    progress(`kiln api ${index + 1}: starting (KILN_ROLE=api)`);
    apis.push(await startKiln(database.url, scope, signal, { keyLabel: 'realtime benchmark (unused)', env: { KILN_ROLE: 'api' } }));
  }
  const apiPid = api.child.pid;
  if (apiPid === undefined) throw new Error('the API process has no pid');
  const clockCheck = await checkClocks(database.admin);
  progress(`clocks: PostgreSQL − bench = ${ms(clockCheck.offsetMs)} ± ${ms(clockCheck.uncertaintyMs)} ms`);

  // Memory first, on a fresh API process: later phases would leave garbage in its heap.
  const memory = await measureMemory(api, apiPid, options, context);
  assertRunning([...apis.map((each) => each.child), worker]);
  const pickup = await measurePickup(api, database, options, context);
  assertRunning([...apis.map((each) => each.child), worker]);
  const delivery: DeliveryRun[] = [];
  const watched = await watchedGeneration(api, database, signal);
  for (const receivers of options.receivers) {
    delivery.push(await measureDelivery(apis, worker, database, options, { receivers, watched }, context));
    assertRunning([...apis.map((each) => each.child), worker]);
  }

  return realtimeReport({ options, server: database.server, loadAverageBefore, clockCheck, memory, pickup, delivery });
}

function assertRunning(children: readonly Child[]): void {
  for (const child of children) {
    const exit = child.exitStatus();
    if (exit !== undefined) throw new Error(`${child.name} exited during the run (${exit}); its last output:\n${child.tail()}`);
  }
}

async function checkClocks(admin: pg.Client): Promise<ClockCheck> {
  const clock = calibratedWallClock();
  let best: ClockCheck | undefined;
  for (let attempt = 0; attempt < 7; attempt += 1) {
    const before = clock();
    const { rows } = await admin.query<{ ms: string }>('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms');
    const after = clock();
    const check = { offsetMs: Number(rows[0]?.ms) - (before + after) / 2, uncertaintyMs: (after - before) / 2 };
    if (!best || check.uncertaintyMs < best.uncertaintyMs) best = check;
  }
  if (!best || !Number.isFinite(best.offsetMs)) throw new Error('could not read the database clock');
  return best;
}

// ---------------------------------------------------------------------------------------------
// Memory per idle subscriber

async function medianRss(pid: number, signal: AbortSignal): Promise<{ rssKb: number; samplesKb: number[] }> {
  const samplesKb: number[] = [];
  for (let sample = 0; sample < RSS_SAMPLES; sample += 1) {
    if (sample > 0) await sleep(1000, signal);
    const kb = residentKb(pid);
    if (kb === undefined) throw new Error(`cannot read /proc/${pid}/status (the memory figure needs Linux and a local API process)`);
    samplesKb.push(kb);
  }
  return { rssKb: summarise(samplesKb).p50, samplesKb };
}

async function measureMemory(api: ServerUnderTest, apiPid: number, options: RealtimeOptions, context: BenchmarkContext): Promise<MemoryPoint[]> {
  const { scope, progress, signal } = context;
  const url = `http://127.0.0.1:${api.port}`;
  const clock = calibratedWallClock();

  // A few subscriptions first, so code loaded and compiled on first use is not counted per subscriber.
  const warm = createSubscriberPool({ urls: [url], apiKey: api.apiKey, record: false, clock });
  scope.defer(() => warm.close());
  await warm.grow(50, { wave: 50, timeoutMs: 30_000, signal });
  await warm.close();
  await sleep(2000, signal);

  const points: MemoryPoint[] = [{ subscribers: 0, ...(await medianRss(apiPid, signal)) }];
  progress(`memory: API RSS with no subscribers ${integer(points[0]!.rssKb / 1024)} MB`);
  const pool = createSubscriberPool({ urls: [url], apiKey: api.apiKey, record: false, clock });
  scope.defer(() => pool.close());
  for (const target of options.idle) {
    await pool.grow(target - pool.subscribers.length, { wave: 250, timeoutMs: 60_000, signal });
    await sleep(2000, signal); // let the server settle after the burst of connections
    const point = { subscribers: target, ...(await medianRss(apiPid, signal)) };
    points.push(point);
    progress(`memory: ${integer(target)} idle subscribers, API RSS ${integer(point.rssKb / 1024)} MB (${((point.rssKb - points[0]!.rssKb) / target).toFixed(1)} KB each)`);
  }
  const errors = pool.subscribers.reduce((sum, subscriber) => sum + subscriber.errors.length, 0);
  if (errors > 0) throw new Error(`${errors} idle subscriptions failed, e.g. ${pool.subscribers.find((subscriber) => subscriber.errors.length > 0)?.errors[0]}`);
  await pool.close();
  await sleep(2000, signal); // the server closes 5,000 subscriptions before the next phase
  return points;
}

// ---------------------------------------------------------------------------------------------
// Pickup latency

const SUBJECTS = ['a ceramic teapot on linen', 'a lighthouse at dusk', 'a red bicycle by a brick wall', 'a fox in a snowy forest', 'a vintage camera on a desk'];

function generateBody(run: string, sequence: number): string {
  // Unique prompts, one cheap variant: the worker's rendering should not be what is measured.
  return JSON.stringify({ prompt: `${SUBJECTS[sequence % SUBJECTS.length]} (${run} #${sequence})`, platforms: ['thumbnail'], formats: ['webp'] });
}

async function generate(agent: http.Agent, api: ServerUnderTest, body: string): Promise<string> {
  const response = await post(agent, api.port, '/trpc/generate', { 'content-type': 'application/json', authorization: `Bearer ${api.apiKey}` }, body, REQUEST_TIMEOUT_MS);
  const data = response.status === 200 ? resultData(response.body) : undefined;
  if (typeof data !== 'object' || data === null || !('id' in data) || typeof data.id !== 'string') {
    throw new Error(`generate answered HTTP ${response.status}: ${response.body.slice(0, 500)}`);
  }
  return data.id;
}

interface EventRow {
  position: string;
  generationId: string;
  stage: string;
  atMs: number;
}

/** The events of these generations, with `at` to the microsecond (JSON would round it to ms). */
async function readEvents(admin: pg.Client, generationIds: readonly string[]): Promise<EventRow[]> {
  const { rows } = await admin.query<{ position: string; generation_id: string; stage: string; at_ms: string }>(
    `SELECT xid::text || ':' || id::text AS position, generation_id, stage, (extract(epoch FROM at) * 1000)::text AS at_ms
       FROM generation_events WHERE generation_id = ANY($1::uuid[]) ORDER BY xid, id`,
    [generationIds],
  );
  return rows.map((row) => ({ position: row.position, generationId: row.generation_id, stage: row.stage, atMs: Number(row.at_ms) }));
}

async function measurePickup(api: ServerUnderTest, database: BenchDatabase, options: RealtimeOptions, context: BenchmarkContext): Promise<PickupRun> {
  const { scope, progress, signal } = context;
  const clock = calibratedWallClock();
  const run = randomBytes(3).toString('hex');
  // The pace is set by the realtime feed (one subscriber): the next call goes out once the
  // previous generation has finished — the worker is idle again — or, with --after started,
  // once it has started. The figures themselves come from the event table.
  const pacer = createKilnClient({ url: `http://127.0.0.1:${api.port}`, apiKey: api.apiKey });
  scope.defer(() => withTimeout(pacer.close(), 5_000, () => 'closing the pacer timed out').catch(() => {}));
  const paced = (stage: string) => (options.pickupAfter === 'started' ? stage === 'started' : FINAL_STATES.includes(stage));
  const pacedIds = new Set<string>();
  let waiting: { id: string; resolve(): void } | undefined;
  let pacerError: unknown;
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      pacer.trpc.onUpdate.subscribe(
        {},
        {
          onStarted: () => resolve(),
          onData: ({ data }) => {
            if (!paced(data.stage)) return;
            pacedIds.add(data.generationId);
            if (waiting?.id === data.generationId) waiting.resolve();
          },
          onError: (error) => {
            pacerError = error;
            reject(error);
          },
        },
      );
    }),
    30_000,
    () => 'the pacing subscription did not start within 30 s',
    signal,
  );
  await sleep(SUBSCRIBE_SETTLE_MS, signal);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const measured: { id: string; returnedAt: number; roundTripMs: number }[] = [];
  let pacerFallbacks = 0;
  const total = options.pickupWarmup + options.pickupRequests;
  progress(`pickup: ${options.pickupWarmup} warm-up + ${options.pickupRequests} sequential generate calls, each ${options.pickupGapMs} ms after the previous one ${options.pickupAfter}`);
  try {
    for (let sequence = 0; sequence < total; sequence += 1) {
      signal.throwIfAborted();
      const sentAt = clock();
      const id = await generate(agent, api, generateBody(run, sequence));
      const returnedAt = clock();
      if (sequence >= options.pickupWarmup) measured.push({ id, returnedAt, roundTripMs: returnedAt - sentAt });
      const pushed = await withTimeout(
        new Promise<boolean>((resolve) => {
          if (pacedIds.has(id)) resolve(true);
          else waiting = { id, resolve: () => resolve(true) };
        }),
        PACER_WAIT_MS,
        () => 'not pushed',
        signal,
      ).catch((error: unknown) => {
        if (signal.aborted) throw error;
        return false;
      });
      // Not pushed in time: look in the table instead (the figures come from there anyway).
      if (!pushed) {
        pacerFallbacks += 1;
        const found = options.pickupAfter === 'started' ? waitForStage(database.admin, id, 'started', 30_000, signal) : waitUntilFinal(database.admin, [id], 30_000, signal);
        await found.catch((error: unknown) => {
          throw new Error(`${error instanceof Error ? error.message : String(error)}${pacerError ? ` (pacing subscription failed: ${String(pacerError)})` : ''}`);
        });
      }
      waiting = undefined;
      pacedIds.delete(id);
      if (options.pickupGapMs > 0) await sleep(options.pickupGapMs, signal);
    }
  } finally {
    agent.destroy();
  }
  await withTimeout(pacer.close(), 5_000, () => 'closing the pacer timed out').catch(() => {});

  const events = await readEvents(
    database.admin,
    measured.map((sample) => sample.id),
  );
  const firstAt = (generationId: string, stage: string) => events.find((event) => event.generationId === generationId && event.stage === stage)?.atMs;
  const pickups: number[] = [];
  const fromQueued: number[] = [];
  for (const sample of measured) {
    const startedAt = firstAt(sample.id, 'started');
    const queuedAt = firstAt(sample.id, 'queued');
    if (startedAt === undefined || queuedAt === undefined) throw new Error(`generation ${sample.id} has no queued/started event in the table`);
    pickups.push(startedAt - sample.returnedAt);
    fromQueued.push(startedAt - queuedAt);
  }
  const result: PickupRun = {
    requests: options.pickupRequests,
    warmup: options.pickupWarmup,
    gapMs: options.pickupGapMs,
    after: options.pickupAfter,
    latencyMs: summarise(pickups),
    fromQueuedEventMs: summarise(fromQueued),
    generateRoundTripMs: summarise(measured.map((sample) => sample.roundTripMs)),
    negative: pickups.filter((value) => value < 0).length,
    pacerFallbacks,
    pacerWaitMs: PACER_WAIT_MS,
  };
  progress(`pickup: p50 ${ms(result.latencyMs.p50)} ms, p99 ${ms(result.latencyMs.p99)} ms, max ${ms(result.latencyMs.max)} ms`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Event delivery latency

async function waitForStage(admin: pg.Client, generationId: string, stage: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rowCount } = await admin.query('SELECT 1 FROM generation_events WHERE generation_id = $1 AND stage = $2 LIMIT 1', [generationId, stage]);
    if (rowCount) return;
    if (Date.now() > deadline) throw new Error(`generation ${generationId} had no ${stage} event within ${timeoutMs / 1000} s`);
    await sleep(50, signal);
  }
}

/** Waits until every generation is final in the table; its events are then all written. */
async function waitUntilFinal(admin: pg.Client, generationIds: readonly string[], timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await admin.query<{ open: string }>(`SELECT count(*)::text AS open FROM generations WHERE id = ANY($1::uuid[]) AND NOT (state = ANY($2::text[]))`, [
      generationIds,
      FINAL_STATES,
    ]);
    const open = Number(rows[0]?.open ?? 0);
    if (open === 0) return;
    if (Date.now() > deadline) throw new Error(`${open} of ${generationIds.length} generations were not finished within ${timeoutMs / 1000} s`);
    await sleep(100, signal);
  }
}

/**
 * Waits until every subscriber holds at least `events` events of these generations, or the
 * timeout passes (what is missing then is reported, not thrown). Returns whether all arrived.
 */
async function waitForDeliveries(subscribers: readonly Subscriber[], generationIds: ReadonlySet<string>, events: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const counted = subscribers.map(() => ({ scanned: 0, matching: 0 }));
  for (;;) {
    let complete = 0;
    subscribers.forEach((subscriber, index) => {
      const progress = counted[index]!;
      for (; progress.scanned < subscriber.generationIds.length; progress.scanned += 1) {
        if (generationIds.has(subscriber.generationIds[progress.scanned]!)) progress.matching += 1;
      }
      if (progress.matching >= events) complete += 1;
    });
    if (complete === subscribers.length) return true;
    if (Date.now() > deadline) return false;
    await sleep(100, signal);
  }
}

function comparePositionText(a: string, b: string): number {
  const [ax = '0', ai = '0'] = a.split(':');
  const [bx = '0', bi = '0'] = b.split(':');
  const byXid = BigInt(ax) - BigInt(bx);
  if (byXid !== 0n) return byXid < 0n ? -1 : 1;
  const byId = BigInt(ai) - BigInt(bi);
  return byId === 0n ? 0 : byId < 0n ? -1 : 1;
}

/** CPU ticks used so far by these processes together; undefined if any can't be read. */
function ticksOf(servers: readonly ServerUnderTest[]): number | undefined {
  let sum = 0;
  for (const server of servers) {
    const ticks = server.child.pid === undefined ? undefined : processTicks(server.child.pid);
    if (ticks === undefined) return undefined;
    sum += ticks;
  }
  return sum;
}

/** A finished generation for the subscribers that are connected but receive nothing to watch. */
async function watchedGeneration(api: ServerUnderTest, database: BenchDatabase, signal: AbortSignal): Promise<string> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const id = await generate(agent, api, generateBody(randomBytes(3).toString('hex'), 0));
    await waitUntilFinal(database.admin, [id], 30_000, signal);
    return id;
  } finally {
    agent.destroy();
  }
}

/**
 * One delivery measurement: `subscribers` connections, of which `receivers` watch all of the
 * tenant's generations (so get every event) and the rest each watch the finished generation
 * `watched` (connected, matched against nothing new) — a server holding many subscriptions
 * while each event concerns some of them.
 */
async function measureDelivery(
  apis: readonly ServerUnderTest[],
  worker: Child,
  database: BenchDatabase,
  options: RealtimeOptions,
  { receivers, watched }: { receivers: number; watched: string },
  context: BenchmarkContext,
): Promise<DeliveryRun> {
  const { scope, progress, signal } = context;
  const clock = calibratedWallClock();
  const run = randomBytes(3).toString('hex');
  const api = apis[0]!;
  const urls = apis.map((each) => `http://127.0.0.1:${each.port}`);
  // Every API process takes the first one's key: they share the database, so any of them knows it.
  const pool = createSubscriberPool({ urls, apiKey: api.apiKey, record: true, clock });
  const bystanders = createSubscriberPool({ urls, apiKey: api.apiKey, record: true, clock });
  scope.defer(() => pool.close());
  scope.defer(() => bystanders.close());
  const idle = options.subscribers - receivers;
  progress(`delivery: opening ${integer(options.subscribers)} subscribers (one WebSocket connection each): ${integer(receivers)} watch every generation, ${integer(idle)} one finished generation`);
  await pool.grow(receivers, { wave: 100, timeoutMs: 60_000, signal });
  await bystanders.grow(idle, { wave: 100, timeoutMs: 60_000, signal, generationId: watched });
  // Each has received the finished generation's history: its subscription is registered, so
  // receiving nothing of the trickle below shows it is not sent what it does not watch.
  const history = await readEvents(database.admin, [watched]);
  if (!(await waitForDeliveries(bystanders.subscribers, new Set([watched]), history.length, 30_000, signal))) {
    throw new Error(`not every idle subscriber received generation ${watched}'s ${history.length} events within 30 s`);
  }
  // tRPC acknowledges a subscription ('started') just before Kiln registers it with the feed:
  // give the last ones a moment, so the warm-up below is seen by all.
  await sleep(SUBSCRIBE_SETTLE_MS, signal);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    // Warm-up, and proof that every subscription is live before the measurement starts.
    const warmIds = [await generate(agent, api, generateBody(run, 0)), await generate(agent, api, generateBody(run, 1))];
    await waitUntilFinal(database.admin, warmIds, 30_000, signal);
    const warmEvents = await readEvents(database.admin, warmIds);
    if (!(await waitForDeliveries(pool.subscribers, new Set(warmIds), warmEvents.length, 20_000, signal))) {
      const warm = new Set(warmEvents.map((event) => event.position));
      const short = pool.subscribers.filter((subscriber) => subscriber.ids.filter((id) => warm.has(id)).length < warm.size);
      const example = short[0];
      const missingStages = example ? warmEvents.filter((event) => !example.ids.includes(event.position)).map((event) => `${event.stage}@${event.position}`) : [];
      throw new Error(
        `the warm-up generations' events did not reach every subscriber within 20 s: ${short.length} of ${pool.subscribers.length} subscribers lack some (e.g. ${missingStages.join(', ')}; it got ${example?.ids.join(' ')}; starts ${example?.starts}, errors ${example?.errors.join('; ')})`,
      );
    }

    const count = Math.max(1, Math.round(options.rate * options.durationSeconds));
    progress(`delivery: ${count} generations at ${options.rate}/s over ${options.durationSeconds} s, each event to ${integer(receivers)} of ${integer(options.subscribers)} subscribers`);
    // Every API process's CPU is read here; cpuSnapshot covers the machine, Postgres and us.
    const apisBefore = ticksOf(apis);
    const cpuBefore = await cpuSnapshot(database.admin, undefined);
    const workerBefore = worker.pid === undefined ? undefined : processTicks(worker.pid);
    const windowStart = performance.now();
    const calls: Promise<string>[] = [];
    for (let sequence = 0; sequence < count; sequence += 1) {
      const due = windowStart + (sequence * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait, signal);
      const call = generate(agent, api, generateBody(run, sequence + 2));
      call.catch(() => {}); // awaited below
      calls.push(call);
    }
    const ids = await Promise.all(calls);
    await waitUntilFinal(database.admin, ids, 60_000, signal);
    const expected = await readEvents(database.admin, ids);
    const allArrived = await waitForDeliveries(pool.subscribers, new Set(ids), expected.length, 20_000, signal);
    // A short wait for anything sent twice to show up too.
    await sleep(allArrived ? 500 : 0, signal);
    const windowSeconds = (performance.now() - windowStart) / 1000;
    const cpuAfter = await cpuSnapshot(database.admin, undefined);
    const apisAfter = ticksOf(apis);
    const workerAfter = worker.pid === undefined ? undefined : processTicks(worker.pid);
    const cpu = { ...cpuUse(cpuBefore, cpuAfter), apiMs: apisBefore === undefined || apisAfter === undefined ? undefined : (apisAfter - apisBefore) * TICK_MS };
    const perSecond = (msUsed: number | undefined) => (msUsed === undefined ? undefined : msUsed / windowSeconds);

    const { analysis: result, perEvent } = analyseDeliveries(pool.subscribers, expected);
    const measuredIds = new Set(ids);
    const strayDeliveries = bystanders.subscribers.reduce((sum, subscriber) => sum + subscriber.generationIds.filter((id) => measuredIds.has(id)).length, 0);
    const bystanderErrors = bystanders.subscribers.filter((subscriber) => subscriber.errors.length > 0 || subscriber.starts !== 1);
    if (bystanderErrors.length > 0) {
      throw new Error(`${bystanderErrors.length} idle subscriptions failed or reconnected, e.g. ${bystanderErrors[0]?.errors[0] ?? `${bystanderErrors[0]?.starts} starts`}`);
    }
    await Promise.all([pool.close(), bystanders.close()]);
    await sleep(2000, signal); // the server closes the subscriptions before the next measurement
    const tracePath = process.env.KILN_BENCH_REALTIME_TRACE?.trim();
    if (tracePath) {
      const file = `${tracePath}.${receivers}`;
      await writeFile(file, `${perEvent.map((row) => JSON.stringify(row)).join('\n')}\n`);
      progress(`delivery: per-event trace written to ${file}`);
    }
    const delivery: DeliveryRun = {
      subscribers: options.subscribers,
      receivers,
      strayDeliveries,
      rate: options.rate,
      durationSeconds: options.durationSeconds,
      generations: ids.length,
      windowSeconds,
      cpu: {
        api: perSecond(cpu.apiMs),
        worker: workerBefore !== undefined && workerAfter !== undefined ? ((workerAfter - workerBefore) * TICK_MS) / windowSeconds : undefined,
        postgres: perSecond(cpu.postgresMs),
        bench: cpu.loadGeneratorMs / windowSeconds,
        machineBusy: cpu.machineBusy,
      },
      cpuPerDeliveryUs: {
        api: cpu.apiMs === undefined ? undefined : (cpu.apiMs * 1000) / Math.max(1, result.deliveries),
        bench: (cpu.loadGeneratorMs * 1000) / Math.max(1, result.deliveries),
      },
      ...result,
    };
    progress(
      `delivery: ${integer(delivery.deliveries)} of ${integer(delivery.expectedDeliveries)} deliveries, p50 ${ms(delivery.latencyMs.p50)} ms, p99 ${ms(delivery.latencyMs.p99)} ms, max ${ms(delivery.latencyMs.max)} ms`,
    );
    return delivery;
  } finally {
    agent.destroy();
  }
}

type DeliveryAnalysis = Omit<DeliveryRun, 'subscribers' | 'receivers' | 'strayDeliveries' | 'rate' | 'durationSeconds' | 'generations' | 'windowSeconds' | 'cpu' | 'cpuPerDeliveryUs'>;

/** One line of the optional trace: when an event was written and when it reached its first and last subscriber. */
interface EventTrace extends EventRow {
  firstMs: number | null;
  lastMs: number | null;
}

function analyseDeliveries(subscribers: readonly Subscriber[], expected: readonly EventRow[]): { analysis: DeliveryAnalysis; perEvent: EventTrace[] } {
  const byPosition = new Map(expected.map((event) => [event.position, event]));
  const latencies: number[] = [];
  const byStage = new Map<string, number[]>();
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  let duplicates = 0;
  let missing = 0;
  let outOfOrder = 0;
  let deliveries = 0;
  for (const subscriber of subscribers) {
    const seen = new Set<string>();
    subscriber.ids.forEach((id, index) => {
      // Feed order over everything this subscriber got, warm-up included.
      const previous = index > 0 ? subscriber.ids[index - 1] : undefined;
      if (previous !== undefined && comparePositionText(previous, id) >= 0) outOfOrder += 1;
      const event = byPosition.get(id);
      if (!event) return;
      if (seen.has(id)) {
        duplicates += 1;
        return;
      }
      seen.add(id);
      deliveries += 1;
      const receivedAt = subscriber.receivedAt[index]!;
      const latency = receivedAt - event.atMs;
      latencies.push(latency);
      let stage = byStage.get(event.stage);
      if (!stage) byStage.set(event.stage, (stage = []));
      stage.push(latency);
      first.set(id, Math.min(first.get(id) ?? Infinity, receivedAt));
      last.set(id, Math.max(last.get(id) ?? -Infinity, receivedAt));
    });
    missing += expected.length - seen.size;
  }
  const receiptLatencies = (times: Map<string, number>) => [...times].map(([id, at]) => at - (byPosition.get(id)?.atMs ?? Number.NaN));
  const stages: Record<string, number> = {};
  for (const event of expected) stages[event.stage] = (stages[event.stage] ?? 0) + 1;
  const withErrors = subscribers.filter((subscriber) => subscriber.errors.length > 0);
  const analysis: DeliveryAnalysis = {
    events: expected.length,
    stages,
    expectedDeliveries: expected.length * subscribers.length,
    deliveries,
    missing,
    duplicates,
    outOfOrder,
    resubscribed: subscribers.filter((subscriber) => subscriber.starts > 1).length,
    subscriberErrors: withErrors.length,
    firstError: withErrors[0]?.errors[0],
    latencyMs: summarise(latencies),
    firstReceiptMs: summarise(receiptLatencies(first)),
    lastReceiptMs: summarise(receiptLatencies(last)),
    p99ByStageMs: Object.fromEntries([...byStage].map(([stage, values]) => [stage, summarise(values).p99])),
  };
  const perEvent = expected.map((event) => ({ ...event, firstMs: first.get(event.position) ?? null, lastMs: last.get(event.position) ?? null }));
  return { analysis, perEvent };
}
