// The enqueue benchmark: concurrent clients calling `generate` on a real Kiln for a bounded
// time, compared in the same run with a bare tRPC mutation doing one INSERT on the same
// database; then `batch` with 1,000 items.
import os from 'node:os';
import http from 'node:http';
import { IMAGE_FORMATS, PLATFORMS } from '../../jobs/render/presets.ts';
import { cpuSnapshot, cpuUse } from './cpu.ts';
import { checkpoint, provisionDatabase, readCounters, type BenchDatabase } from './database.ts';
import { numberFlag, readFlags, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { post, resultData, runLoad, summarise, type LoadResult } from './load.ts';
import { BASELINE_TABLE_SQL, POOL_SIZE, startBaseline, startKiln, type ServerUnderTest } from './servers.ts';
import { enqueueReport } from './enqueue-report.ts';
import { integer, ms } from './table.ts';

export interface EnqueueOptions {
  durationSeconds: number;
  warmupSeconds: number;
  concurrency: number;
}

const BATCH = { items: 1000, warmupRuns: 1, runs: 5 } as const;
const REQUEST_TIMEOUT_MS = 10_000;

export const enqueueBenchmark: Benchmark = {
  summary: 'generate calls/s and latency on a real Kiln vs. a bare tRPC + INSERT baseline; batch of 1,000',
  usage: [
    '      --duration SECONDS     measured time per server (default 10)',
    '      --warmup SECONDS       unmeasured warm-up before each measurement (default 2)',
    '      --concurrency N        concurrent clients (default 64)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['duration', 'warmup', 'concurrency']);
    const options: EnqueueOptions = {
      durationSeconds: numberFlag('duration', text('duration'), 10, { min: 1, max: 600 }),
      warmupSeconds: numberFlag('warmup', text('warmup'), 2, { min: 0, max: 120 }),
      concurrency: numberFlag('concurrency', text('concurrency'), 64, { min: 1, max: 1024, integer: true }),
    };
    // Two measured servers one after the other, plus start-up, the batch runs and shutdown.
    const budgetMs = 2 * (options.warmupSeconds + options.durationSeconds) * 1000 + 60_000;
    return { budgetMs, run: (context) => runEnqueue(options, context) };
  },
};

export interface SteadyRun extends LoadResult {
  /** Work per completed request over warm-up and measurement; CPU figures undefined where /proc can't tell. */
  perRequest: { walBytes: number; writeTransactions: number; apiCpuMs: number | undefined; postgresCpuMs: number | undefined; loadGeneratorCpuMs: number };
  /** Share of the whole machine's CPU in use over the run, 0–1. */
  machineBusy: number | undefined;
}

export interface BatchRun {
  items: number;
  warmupRuns: number;
  runsMs: number[];
  minMs: number;
  p50Ms: number;
  maxMs: number;
}

async function runEnqueue(options: EnqueueOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  // Other work on the machine skews every figure: recorded with the conditions.
  const loadAverageBefore = os.loadavg()[0] ?? Number.NaN;
  const database = await provisionDatabase(scope, progress);
  await database.admin.query(BASELINE_TABLE_SQL);

  // One server at a time, so neither competes with the other for the 2 cores.
  signal.throwIfAborted();
  progress('baseline: starting');
  const baselineServer = await startBaseline(database.url, scope, signal);
  const baseline = await measureSteady('baseline', baselineServer, database, options, context);
  await baselineServer.child.stop();

  signal.throwIfAborted();
  progress('kiln: starting (role=api)');
  const kilnServer = await startKiln(database.url, scope, signal);
  const kiln = await measureSteady('kiln', kilnServer, database, options, context);
  signal.throwIfAborted();
  const batch = await measureBatch(kilnServer, context);
  await kilnServer.child.stop();

  return enqueueReport({ options, server: database.server, loadAverageBefore, poolSize: POOL_SIZE, baseline, kiln, batch });
}

const SUBJECTS = ['a ceramic teapot on a linen tablecloth', 'a lighthouse at dusk over a calm sea', 'a red bicycle leaning on a brick wall', 'a bowl of ramen with soft egg', 'a fox in a snowy pine forest', 'a vintage camera on a wooden desk'];
const STYLES = ['soft morning light', 'studio product shot', 'watercolour style', 'cinematic, 35mm film'];

/** ~60-character prompts that differ per request, as real traffic would. */
function promptFor(sequence: number): string {
  return `${SUBJECTS[sequence % SUBJECTS.length]}, ${STYLES[(sequence >> 3) % STYLES.length]} #${sequence}`;
}

function headersFor(server: ServerUnderTest): Record<string, string> {
  return { 'content-type': 'application/json', authorization: `Bearer ${server.apiKey}` };
}

async function measureSteady(name: string, server: ServerUnderTest, database: BenchDatabase, options: EnqueueOptions, context: BenchmarkContext): Promise<SteadyRun> {
  const headers = headersFor(server);
  const body = (sequence: number) => JSON.stringify({ prompt: promptFor(sequence), platforms: ['instagram-post'], formats: ['webp'] });

  // One call first: a wrong key or route must fail loudly, not as thousands of counted errors.
  const agent = new http.Agent({ keepAlive: false });
  const first = await post(agent, server.port, '/trpc/generate', headers, body(0), REQUEST_TIMEOUT_MS);
  const data = first.status === 200 ? resultData(first.body) : undefined;
  if (typeof data !== 'object' || data === null || !('id' in data) || typeof data.id !== 'string') {
    throw new Error(`${name}: generate answered HTTP ${first.status}: ${first.body.slice(0, 500)}`);
  }

  await checkpoint(database.admin);
  const before = await readCounters(database.admin);
  const cpuBefore = await cpuSnapshot(database.admin, server.child.pid);
  context.progress(`${name}: ${options.warmupSeconds} s warm-up + ${options.durationSeconds} s measured, ${options.concurrency} clients`);
  const result = await runLoad({
    port: server.port,
    path: '/trpc/generate',
    headers,
    body: (sequence) => body(sequence + 1),
    concurrency: options.concurrency,
    warmupMs: options.warmupSeconds * 1000,
    durationMs: options.durationSeconds * 1000,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    signal: context.signal,
  });
  context.signal.throwIfAborted(); // an interrupted run has no figures worth reporting
  const cpuAfter = await cpuSnapshot(database.admin, server.child.pid);
  const after = await readCounters(database.admin);
  const exit = server.child.exitStatus();
  if (exit !== undefined) throw new Error(`${name} exited during the measurement (${exit}); its last output:\n${server.child.tail()}`);
  const cpu = cpuUse(cpuBefore, cpuAfter);
  const requests = Math.max(1, result.completedTotal);
  const perRequest = (total: number | undefined) => (total === undefined ? undefined : total / requests);
  context.progress(`${name}: ${integer(result.requestsPerSecond)} req/s, p99 ${ms(result.latencyMs.p99)} ms, ${result.non2xx + result.networkErrors} errors`);
  if (result.firstError) context.progress(`${name}: first error: ${result.firstError}`);
  return {
    ...result,
    perRequest: {
      walBytes: (after.walBytes - before.walBytes) / requests,
      // Reading the counters spends no transaction id.
      writeTransactions: (after.nextTransactionId - before.nextTransactionId) / requests,
      apiCpuMs: perRequest(cpu.apiMs),
      postgresCpuMs: perRequest(cpu.postgresMs),
      loadGeneratorCpuMs: cpu.loadGeneratorMs / requests,
    },
    machineBusy: cpu.machineBusy,
  };
}

async function measureBatch(server: ServerUnderTest, context: BenchmarkContext): Promise<BatchRun> {
  const headers = headersFor(server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const runsMs: number[] = [];
  try {
    for (let run = 0; run < BATCH.warmupRuns + BATCH.runs; run += 1) {
      if (context.signal.aborted) throw context.signal.reason;
      const items = Array.from({ length: BATCH.items }, (_, index) => ({
        prompt: promptFor(run * BATCH.items + index),
        platforms: [PLATFORMS[index % PLATFORMS.length]],
        formats: [IMAGE_FORMATS[index % IMAGE_FORMATS.length]],
      }));
      const body = JSON.stringify({ items });
      const started = performance.now();
      const response = await post(agent, server.port, '/trpc/batch', headers, body, 30_000);
      const elapsed = performance.now() - started;
      const data = response.status === 200 ? resultData(response.body) : undefined;
      const ids = typeof data === 'object' && data !== null && 'ids' in data && Array.isArray(data.ids) ? data.ids : [];
      if (ids.length !== BATCH.items || !ids.every((id) => typeof id === 'string')) {
        throw new Error(`batch of ${BATCH.items} answered HTTP ${response.status} with ${ids.length} ids: ${response.body.slice(0, 500)}`);
      }
      if (run >= BATCH.warmupRuns) runsMs.push(elapsed);
    }
  } finally {
    agent.destroy();
  }
  const summary = summarise(runsMs);
  const batch = { items: BATCH.items, warmupRuns: BATCH.warmupRuns, runsMs, minMs: Math.min(...runsMs), p50Ms: summary.p50, maxMs: summary.max };
  context.progress(`batch of ${BATCH.items}: ${runsMs.map(ms).join(', ')} ms`);
  return batch;
}
