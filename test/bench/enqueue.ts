// The enqueue benchmark: concurrent clients calling `generate` on a real Kiln for a bounded
// time, compared in the same run with a bare tRPC mutation doing one INSERT on the same
// database; then `batch` with 1,000 items.
import os from 'node:os';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { IMAGE_FORMATS, PLATFORMS } from '../../jobs/render/presets.ts';
import { checkpoint, provisionDatabase, readCounters, type BenchDatabase } from './database.ts';
import { UsageError, numberFlag, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { post, runLoad, summarise, type LoadResult } from './load.ts';
import { BASELINE_TABLE_SQL, POOL_SIZE, startBaseline, startKiln, type ServerUnderTest } from './servers.ts';
import { formatTable, integer, ms, percent, round } from './table.ts';

interface EnqueueOptions {
  durationSeconds: number;
  warmupSeconds: number;
  concurrency: number;
}

const TARGETS = { shareOfBaseline: 0.6, requestsPerSecond: 1000, p99Ms: 100, batchMs: 250 } as const;
const BATCH = { items: 1000, warmupRuns: 1, runs: 5 } as const;
const REQUEST_TIMEOUT_MS = 10_000;

export const enqueueBenchmark: Benchmark = {
  summary: 'generate calls/s and latency on a real Kiln vs. a bare tRPC + INSERT baseline; batch of 1,000',
  usage: [
    '  --duration SECONDS     measured time per server (default 10)',
    '  --warmup SECONDS       unmeasured warm-up before each measurement (default 2)',
    '  --concurrency N        concurrent clients (default 64)',
  ].join('\n'),
  prepare(args) {
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: [...args],
        strict: true,
        allowPositionals: false,
        options: { duration: { type: 'string' }, warmup: { type: 'string' }, concurrency: { type: 'string' } },
      }));
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error));
    }
    const text = (name: string) => (typeof values[name] === 'string' ? values[name] : undefined);
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

interface SteadyRun extends LoadResult {
  /** Server-side work per request, warm-up included. */
  perRequest: { walBytes: number; writeTransactions: number };
}

interface BatchRun {
  runsMs: number[];
  minMs: number;
  p50Ms: number;
  maxMs: number;
}

async function runEnqueue(options: EnqueueOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const database = await provisionDatabase(scope, progress);
  await database.admin.query(BASELINE_TABLE_SQL);

  // One server at a time, so neither competes with the other for the 2 cores.
  progress('baseline: starting');
  const baselineServer = await startBaseline(database.url, scope, signal);
  const baseline = await measureSteady('baseline', baselineServer, database, options, context);
  await baselineServer.child.stop();

  progress('kiln: starting (role=api)');
  const kilnServer = await startKiln(database.url, scope, signal);
  const kiln = await measureSteady('kiln', kilnServer, database, options, context);
  const batch = await measureBatch(kilnServer, context);
  await kilnServer.child.stop();

  return report(options, database, baseline, kiln, batch);
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

/** tRPC v11 non-batched response: `{ "result": { "data": … } }`. */
function resultData(body: string): unknown {
  const parsed: unknown = JSON.parse(body);
  if (typeof parsed === 'object' && parsed !== null && 'result' in parsed) {
    const result = parsed.result;
    if (typeof result === 'object' && result !== null && 'data' in result) return result.data;
  }
  return undefined;
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
  const after = await readCounters(database.admin);
  const requests = Math.max(1, result.completedTotal);
  context.progress(`${name}: ${integer(result.requestsPerSecond)} req/s, p99 ${ms(result.latencyMs.p99)} ms, ${result.non2xx + result.networkErrors} errors`);
  if (result.firstError) context.progress(`${name}: first error: ${result.firstError}`);
  return {
    ...result,
    perRequest: {
      walBytes: (after.walBytes - before.walBytes) / requests,
      // The counters read themselves once each; no transaction id is spent on reading.
      writeTransactions: (after.nextTransactionId - before.nextTransactionId) / requests,
    },
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
  const batch = { runsMs, minMs: Math.min(...runsMs), p50Ms: summary.p50, maxMs: summary.max };
  context.progress(`batch of ${BATCH.items}: ${runsMs.map(ms).join(', ')} ms`);
  return batch;
}

function report(options: EnqueueOptions, database: BenchDatabase, baseline: SteadyRun, kiln: SteadyRun, batch: BatchRun): BenchmarkReport {
  const share = kiln.requestsPerSecond / baseline.requestsPerSecond;
  const kilnErrors = kiln.non2xx + kiln.networkErrors;
  const targets = [
    { name: 'share of baseline', target: `>= ${percent(TARGETS.shareOfBaseline)}`, actual: percent(share), met: share >= TARGETS.shareOfBaseline },
    { name: 'accepted calls/s', target: `>= ${integer(TARGETS.requestsPerSecond)}`, actual: integer(kiln.requestsPerSecond), met: kiln.requestsPerSecond >= TARGETS.requestsPerSecond },
    { name: 'p99', target: `< ${TARGETS.p99Ms} ms`, actual: `${ms(kiln.latencyMs.p99)} ms`, met: kiln.latencyMs.p99 < TARGETS.p99Ms },
    { name: 'errors', target: '0', actual: String(kilnErrors), met: kilnErrors === 0 },
    { name: `slowest batch of ${integer(BATCH.items)}`, target: `< ${TARGETS.batchMs} ms`, actual: `${ms(batch.maxMs)} ms`, met: batch.maxMs < TARGETS.batchMs },
  ];
  const missed = targets.filter((target) => !target.met);
  const server = database.server;
  const cpus = os.cpus();
  const conditions = {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    postgres: server,
    machine: 'load generator, API and PostgreSQL share one machine; traffic over 127.0.0.1',
    concurrency: options.concurrency,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
    order: 'baseline, then kiln (one server running at a time; CHECKPOINT before each)',
    kilnRole: 'api (no worker: acceptance only)',
    dbPoolSize: POOL_SIZE,
    client: 'node:http, keep-alive, tRPC v11 non-batched POST /trpc/generate, prompt varies per request',
    batch: { items: BATCH.items, warmupRuns: BATCH.warmupRuns, runs: BATCH.runs, sequential: true },
  };

  const durability = server.fsync === 'on' && server.synchronousCommit === 'on' ? 'fsync on' : `fsync ${server.fsync}, synchronous_commit ${server.synchronousCommit}`;
  const row = (label: string, run: SteadyRun) => [
    label,
    integer(run.requestsPerSecond),
    ms(run.latencyMs.p50),
    ms(run.latencyMs.p95),
    ms(run.latencyMs.p99),
    run.non2xx + run.networkErrors === 0 ? '0' : `${run.non2xx} HTTP + ${run.networkErrors} net`,
    `${(run.perRequest.walBytes / 1024).toFixed(1)} KB`,
    run.perRequest.writeTransactions.toFixed(2),
  ];
  const text = [
    `enqueue benchmark — ${cpus.length} cores, Node ${process.version}, PostgreSQL ${server.version} (${server.source === 'embedded' ? 'embedded' : 'DATABASE_URL'}, ${durability}), load generator + API + Postgres on one machine`,
    `concurrency ${options.concurrency}, warm-up ${options.warmupSeconds} s, measured ${options.durationSeconds} s per server, baseline first then Kiln; Kiln role=api (no worker: measures acceptance), pg pool ${POOL_SIZE} each`,
    '',
    formatTable(
      ['', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'WAL/req', 'write tx/req'],
      [row('baseline', baseline), row('kiln', kiln), ['kiln / baseline', percent(share), '', '', '', '', '', '']],
    ),
    '',
    `batch of ${integer(BATCH.items)}    min ${ms(batch.minMs)} ms   p50 ${ms(batch.p50Ms)} ms   max ${ms(batch.maxMs)} ms   (${BATCH.runs} runs after ${BATCH.warmupRuns} warm-up)`,
    `targets: ≥ ${percent(TARGETS.shareOfBaseline)} of baseline, ≥ ${integer(TARGETS.requestsPerSecond)} req/s, p99 < ${TARGETS.p99Ms} ms, 0 errors, batch < ${TARGETS.batchMs} ms   → ${
      missed.length === 0 ? 'met' : `NOT met: ${missed.map((target) => `${target.name} ${target.actual}`).join(', ')}`
    }`,
  ].join('\n');

  const steadyJson = (run: SteadyRun) => ({
    requestsPerSecond: round(run.requestsPerSecond, 1),
    accepted: run.accepted,
    latencyMs: { p50: round(run.latencyMs.p50), p95: round(run.latencyMs.p95), p99: round(run.latencyMs.p99), max: round(run.latencyMs.max), mean: round(run.latencyMs.mean) },
    errors: { non2xx: run.non2xx, network: run.networkErrors, first: run.firstError ?? null },
    perRequest: { walBytes: Math.round(run.perRequest.walBytes), writeTransactions: round(run.perRequest.writeTransactions, 3) },
  });
  const json = {
    benchmark: 'enqueue',
    conditions,
    baseline: steadyJson(baseline),
    kiln: steadyJson(kiln),
    kilnShareOfBaseline: round(share, 3),
    batch: { items: BATCH.items, runsMs: batch.runsMs.map((value) => round(value, 1)), minMs: round(batch.minMs, 1), p50Ms: round(batch.p50Ms, 1), maxMs: round(batch.maxMs, 1) },
    targets,
    targetsMet: missed.length === 0,
  };
  return { text, json };
}
