// The provider benchmark: Kiln against a simulated Replicate with Replicate's limits (600
// creates and 3,000 other calls per minute, 429 past them) and slow predictions (5–30 s), a
// steady backlog of generations, and several worker processes sharing one database. It asks:
// does Kiln create predictions at the limit (and never past it), how much of the read budget
// do its polls take, how many predictions does it keep in flight, what does a worker cost in
// memory, and how long does the backlog take to drain against the ideal (count ÷ rate)?
import os from 'node:os';
import { createKilnClient } from '../../client-sdk/index.ts';
import { provisionDatabase } from './database.ts';
import { UsageError, numberFlag, readFlags, sleep, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { residentKb, type Child } from './processes.ts';
import { providerReport, type ProviderSample } from './provider-report.ts';
import { startBenchProvider, startKiln, startKilnWorker } from './servers.ts';

export interface ProviderOptions {
  generations: number;
  workers: number;
  latencyMs: { min: number; max: number };
  createsPerMinute: number;
  readsPerMinute: number;
  /** Predictions report back by webhook (to the API process) instead of being polled. */
  webhooks: boolean;
}

const SAMPLE_MS = 1000;
const BATCH = 1000;
/** The steady window leaves out this much after the first create and before the last. */
const WINDOW_MARGIN_MS = 10_000;

export const providerBenchmark: Benchmark = {
  summary: 'prediction-creation rate against the provider limit, read budget use, predictions in flight, worker RSS, drain time',
  usage: [
    '      --generations N        backlog to drain (default 2000)',
    '      --workers N            worker processes (default 3)',
    '      --latency MIN-MAX      simulated prediction time in ms (default 5000-30000)',
    '      --creates N            provider create limit per minute, also Kiln\'s budget (default 600)',
    '      --reads N              provider limit per minute for other calls, also Kiln\'s budget (default 3000)',
    '      --webhooks on|off      predictions report back by webhook instead of polls (default off)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['generations', 'workers', 'latency', 'creates', 'reads', 'webhooks']);
    const latency = text('latency') ?? '5000-30000';
    const bounds = /^(\d{1,6})-(\d{1,6})$/.exec(latency);
    if (!bounds || Number(bounds[1]) > Number(bounds[2])) throw new UsageError(`--latency must look like 5000-30000 (got "${latency}")`);
    const webhooks = text('webhooks') ?? 'off';
    if (webhooks !== 'on' && webhooks !== 'off') throw new UsageError(`--webhooks must be on or off (got "${webhooks}")`);
    const options: ProviderOptions = {
      generations: numberFlag('generations', text('generations'), 2000, { min: 10, max: 20_000, integer: true }),
      workers: numberFlag('workers', text('workers'), 3, { min: 1, max: 16, integer: true }),
      latencyMs: { min: Number(bounds[1]), max: Number(bounds[2]) },
      createsPerMinute: numberFlag('creates', text('creates'), 600, { min: 6, max: 60_000 }),
      readsPerMinute: numberFlag('reads', text('reads'), 3000, { min: 6, max: 600_000 }),
      webhooks: webhooks === 'on',
    };
    const idealMs = (options.generations / options.createsPerMinute) * 60_000;
    return { budgetMs: idealMs * 3 + options.latencyMs.max * 2 + 180_000, run: (context) => runProvider(options, context) };
  },
};

async function runProvider(options: ProviderOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const loadAverageBefore = os.loadavg()[0] ?? Number.NaN;
  const database = await provisionDatabase(scope, progress);

  // The provider, in this process: Replicate's limits (with its tolerance for short bursts).
  const { simulator, env: provider } = await startBenchProvider(scope, {
    latencyMs: options.latencyMs,
    createsPerMinute: options.createsPerMinute,
    readsPerMinute: options.readsPerMinute,
    // Small images: this measures the provider side, not our renderers.
    imageSize: 256,
  });


  progress('kiln api: starting (KILN_ROLE=api)');
  const api = await startKiln(database.url, scope, signal, { keyLabel: 'provider benchmark', env: { ...provider, KILN_ROLE: 'api' } });
  const apiUrl = `http://127.0.0.1:${api.port}`;
  const workers: Child[] = [];
  for (let index = 0; index < options.workers; index += 1) {
    progress(`kiln worker ${index + 1}/${options.workers}: starting`);
    workers.push(await startKilnWorker(database.url, scope, signal, { env: { ...provider, ...(options.webhooks ? { KILN_PUBLIC_URL: apiUrl } : {}) } }));
  }

  const client = createKilnClient({ url: apiUrl, apiKey: api.apiKey });
  scope.defer(() => client.close());
  progress(`enqueueing ${options.generations} generations`);
  const started = performance.now();
  const ids: string[] = [];
  for (let offset = 0; offset < options.generations; offset += BATCH) {
    const size = Math.min(BATCH, options.generations - offset);
    const { ids: batch } = await client.batch({ items: Array.from({ length: size }, (_, index) => ({ prompt: `provider bench ${offset + index}`, platforms: ['thumbnail'] as const })) });
    ids.push(...batch);
  }
  await database.admin.query('ANALYZE'); // fresh rows: keep the queue's plans sane (REFERENCE.md)

  const samples: ProviderSample[] = [];
  const rssKb: number[][] = workers.map(() => []);
  for (;;) {
    signal.throwIfAborted();
    const stats = simulator.stats();
    const { rows } = await database.admin.query<{ final: string }>(`SELECT count(*) FILTER (WHERE state IN ('succeeded', 'failed', 'canceled')) AS final FROM generations`);
    const final = Number(rows[0]?.final ?? 0);
    samples.push({ atMs: performance.now() - started, creates: stats.creates, reads: stats.reads, throttled: stats.throttled, inFlight: stats.predictions.starting + stats.predictions.processing, final });
    workers.forEach((worker, index) => {
      const kb = worker.pid === undefined ? undefined : residentKb(worker.pid);
      if (kb !== undefined) rssKb[index]!.push(kb);
    });
    if (samples.length % 10 === 0) progress(`${Math.round((performance.now() - started) / 1000)} s: ${stats.creates} created, ${final} final, ${samples.at(-1)!.inFlight} in flight, ${stats.throttled} × 429`);
    if (final >= options.generations) break;
    for (const worker of workers) if (worker.exitStatus() !== undefined) throw new Error(`${worker.name} exited (${worker.exitStatus()}):\n${worker.tail()}`);
    await sleep(SAMPLE_MS, signal);
  }
  const { rows: states } = await database.admin.query<{ state: string; count: string }>('SELECT state, count(*) FROM generations GROUP BY state');

  return providerReport({
    options,
    server: database.server,
    loadAverageBefore,
    samples,
    windowMarginMs: WINDOW_MARGIN_MS,
    drainMs: performance.now() - started,
    workerRssKb: rssKb,
    states: Object.fromEntries(states.map((row) => [row.state, Number(row.count)])),
    limiter: await database.admin.query<{ name: string; granted: string; throttled: string }>('SELECT name, granted, throttled FROM provider_rate_limits').then((result) => result.rows),
  });
}
