// The backlog benchmark: what a deep queue costs the dispatcher and the queue estimate. Tenant
// A's backlog grows to 50,000 (the seeds' enterprise batch) beside tenant B's 20 and a tenant
// shared by subject with 100 stores of 10; at each size it times the dispatcher's tick read
// (db/dispatch.ts, in a transaction that is rolled back, so nothing is dispatched) and
// `status` through the client for a generation at the front of a lane and one at the back of
// A's, and checks the position `status` reports. Only an API process runs: nothing dispatches
// while it measures. The read and the estimate should stay flat as the backlog grows, apart
// from the count of what is ahead of the generation at the back.
import os from 'node:os';
import { createKilnClient, type KilnClient } from '../../client-sdk/index.ts';
import { openDatabase } from '../../db/database.ts';
import { readDispatchState } from '../../db/dispatch.ts';
import { describeMachine } from './machine.ts';
import { provisionDatabase } from './database.ts';
import { UsageError, numberFlag, readFlags, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { createBenchTenant, startKiln } from './servers.ts';
import { formatTable, integer, ms, quantile, round } from './table.ts';

interface BacklogOptions {
  sizes: number[];
  /** Timed runs of each measurement at each size. */
  runs: number;
}

export const backlogBenchmark: Benchmark = {
  summary: 'cost of a deep backlog: the dispatcher\'s tick read and status\'s queue estimate at 0–50,000 waiting',
  usage: [
    '      --sizes N,N            tenant A\'s backlog at each step (default 1000,5000,20000,50000)',
    '      --runs N               timed runs of each measurement per step (default 50)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['sizes', 'runs']);
    const sizes = (text('sizes') ?? '1000,5000,20000,50000').split(',').map((part) => numberFlag('sizes', part, 0, { min: 1000, max: 100_000, integer: true }));
    if (sizes.some((size, index) => index > 0 && size <= sizes[index - 1]!)) throw new UsageError(`--sizes must list ascending sizes (got "${text('sizes') ?? ''}")`);
    const options: BacklogOptions = { sizes, runs: numberFlag('runs', text('runs'), 50, { min: 5, max: 1000, integer: true }) };
    return { budgetMs: 15 * 60_000, run: (context) => runBacklog(options, context) };
  },
};

async function timed(runs: number, step: () => Promise<unknown>): Promise<{ p50: number; p95: number }> {
  await step(); // warm: connections, prepared statements
  const times: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const started = performance.now();
    await step();
    times.push(performance.now() - started);
  }
  return { p50: quantile(times, 0.5), p95: quantile(times, 0.95) };
}

async function runBacklog(options: BacklogOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const loadBefore = os.loadavg()[0] ?? 0;
  const database = await provisionDatabase(scope, progress);
  progress('kiln api: starting (no worker: nothing is dispatched while it measures)');
  const api = await startKiln(database.url, scope, signal, { keyLabel: 'backlog benchmark', env: { KILN_ROLE: 'api' } });
  const url = `http://127.0.0.1:${api.port}`;
  const handle = openDatabase({ connectionString: database.url, maxConnections: 2, applicationName: 'kiln-bench-backlog' });
  scope.defer(() => handle.close());
  const tenant = async (name: string, shareBy: 'tenant' | 'subject' = 'tenant'): Promise<KilnClient> => {
    const row = await createBenchTenant(handle.db, { name, shareBy, keyLabel: 'backlog benchmark' });
    const client = createKilnClient({ url, apiKey: row.apiKey });
    scope.defer(() => client.close());
    return client;
  };
  const a = await tenant('A');
  const b = await tenant('B');
  const stores = await tenant('stores', 'subject');
  const queue = async (client: KilnClient, count: number, subject?: (index: number) => string) => {
    const ids: string[] = [];
    for (let offset = 0; offset < count; offset += 1000) {
      const items = Array.from({ length: Math.min(1000, count - offset) }, (_, index) => ({
        prompt: `backlog ${offset + index}`,
        platforms: ['thumbnail' as const],
        ...(subject ? { subject: subject(offset + index) } : {}),
      }));
      ids.push(...(await client.batch({ items })).ids);
    }
    return ids;
  };
  const [bFirst] = await queue(b, 20);
  await queue(stores, 1000, (index) => `store-${index % 100}`);
  const tickRead = () =>
    handle.db
      .transaction()
      .execute(async (trx) => {
        await readDispatchState(trx, { budget: 'replicate:create', perLane: 200, maxLanes: 200, defaultCap: 1000 });
        throw new RolledBack();
      })
      .catch((error: unknown) => {
        if (!(error instanceof RolledBack)) throw error;
      });

  const rows: { backlog: number; enqueueMs: number; tick: { p50: number; p95: number }; front: { p50: number; p95: number }; back: { p50: number; p95: number }; backPosition: number }[] = [];
  let queued = 0;
  let last = '';
  for (const size of options.sizes) {
    progress(`tenant A's backlog: ${integer(queued)} → ${integer(size)}`);
    const enqueueFrom = performance.now();
    const ids = await queue(a, size - queued);
    const enqueueMs = (performance.now() - enqueueFrom) / Math.ceil((size - queued) / 1000);
    queued = size;
    last = ids.at(-1) ?? last;
    await database.admin.query('ANALYZE generations');
    const tick = await timed(options.runs, tickRead);
    const front = await timed(options.runs, () => b.status({ id: bFirst! }));
    const back = await timed(options.runs, () => a.status({ id: last }));
    const backPosition = (await a.status({ id: last })).queue?.position ?? Number.NaN;
    rows.push({ backlog: size, enqueueMs, tick, front, back, backPosition });
  }

  const machine = describeMachine(database.server, loadBefore);
  const table = formatTable(
    ['waiting (A + 1,020)', 'batch of 1,000 ms', 'tick read p50 ms', 'p95 ms', 'status front p50 ms', 'p95 ms', 'status back p50 ms', 'p95 ms', 'back position'],
    rows.map((row) => [integer(row.backlog + 1020), ms(row.enqueueMs), ms(row.tick.p50), ms(row.tick.p95), ms(row.front.p50), ms(row.front.p95), ms(row.back.p50), ms(row.back.p95), integer(row.backPosition)]),
  );
  const text = [
    `backlog — ${machine.heading}; one API process, no worker; tenant A (by tenant) beside B's 20 and 100 stores × 10 (by subject)`,
    table,
    'the tick read is what the dispatcher reads each tick (lanes, heads, loads, budget); status at the back counts what is ahead of it',
  ].join('\n');
  const json = {
    benchmark: 'backlog',
    conditions: { ...machine.conditions, runs: options.runs },
    rows: rows.map((row) => ({
      waiting: row.backlog + 1020,
      batchOf1000Ms: round(row.enqueueMs),
      tickReadMs: { p50: round(row.tick.p50), p95: round(row.tick.p95) },
      statusFrontMs: { p50: round(row.front.p50), p95: round(row.front.p95) },
      statusBackMs: { p50: round(row.back.p50), p95: round(row.back.p95) },
      backPosition: row.backPosition,
    })),
  };
  const deepest = rows.at(-1);
  const summary = deepest
    ? [{ figure: `at ${integer(deepest.backlog + 1020)} waiting: tick read p50; status front / back p50`, value: `${ms(deepest.tick.p50)} ms; ${ms(deepest.front.p50)} / ${ms(deepest.back.p50)} ms` }]
    : [];
  return { text, json, summary };
}

/** Ends the measured transaction without a trace. */
class RolledBack extends Error {}
