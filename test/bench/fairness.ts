// The fairness benchmark: does the dispatcher (jobs/dispatch/) share the provider's create
// budget fairly? Tenant A queues a large backlog (5,000); then tenants B–E queue 20 each. The
// simulated provider is at Replicate's limits (600 creates/min), Kiln's budget the same; two
// worker processes share one database. It reports each small tenant's wait (queued → started)
// p50/p95 against the same 4 × 20 in an empty system (target: within 2×); Jain's fairness index
// of create throughput across the backlogged tenants over the window (target ≥ 0.95); the
// weighted shares when tiers differ (free 1, standard 2, pro 4 beside A's standard backlog);
// the provider create rate as a share of its limit (target ≥ 99 %, no 429); and what the
// dispatcher costs: its enqueue calls per second and the pickup latency of a booked slot
// (started − slot).
import { createKilnClient, type KilnClient } from '../../client-sdk/index.ts';
import { openDatabase } from '../../db/database.ts';
import { provisionDatabase, type BenchDatabase } from './database.ts';
import { numberFlag, readFlags, sleep, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { createBenchTenant, startBenchProvider, startKiln, startKilnWorker } from './servers.ts';
import { formatTable, integer, ms, quantile } from './table.ts';

const percent = (fraction: number): string => (Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)} %` : '–');

export interface FairnessOptions {
  backlog: number;
  small: number;
  smallTenants: number;
  createsPerMinute: number;
  workers: number;
  /** The weighted window's length. */
  windowSeconds: number;
}

const TIERS = ['free', 'standard', 'pro'] as const;
/** Kiln's default create burst, which the benchmark keeps. */
const CREATE_BURST = 10;
const WEIGHTS: Record<string, number> = { free: 1, standard: 2, pro: 4 };

export const fairnessBenchmark: Benchmark = {
  summary: 'fair share of the create budget: small tenants behind a backlog, Jain index, tier weights, create rate, dispatch cost',
  usage: [
    '      --backlog N            tenant A\'s backlog (default 5000)',
    '      --small N              generations of each small tenant (default 20)',
    '      --tenants N            small tenants (default 4: B–E)',
    '      --creates N            provider create limit per minute, also Kiln\'s budget (default 600)',
    '      --workers N            worker processes (default 2)',
    '      --window S             seconds of the tier-weights window (default 20)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['backlog', 'small', 'tenants', 'creates', 'workers', 'window']);
    const options: FairnessOptions = {
      backlog: numberFlag('backlog', text('backlog'), 5000, { min: 100, max: 50_000, integer: true }),
      small: numberFlag('small', text('small'), 20, { min: 1, max: 1000, integer: true }),
      smallTenants: numberFlag('tenants', text('tenants'), 4, { min: 1, max: 20, integer: true }),
      createsPerMinute: numberFlag('creates', text('creates'), 600, { min: 60, max: 60_000 }),
      workers: numberFlag('workers', text('workers'), 2, { min: 1, max: 8, integer: true }),
      windowSeconds: numberFlag('window', text('window'), 20, { min: 5, max: 600, integer: true }),
    };
    return { budgetMs: 15 * 60_000, run: (context) => runFairness(options, context) };
  },
};

interface Tenant {
  name: string;
  tier: string;
  id: string;
  client: KilnClient;
}

/** Jain's index: 1 when every x is equal, 1/n when one takes all. */
export const jainIndex = (xs: readonly number[]): number => {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? Number.NaN : (sum * sum) / (xs.length * squares);
};

async function waitsOf(database: BenchDatabase, ids: readonly string[]): Promise<number[]> {
  const { rows } = await database.admin.query<{ wait_ms: number }>(
    `SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS wait_ms FROM generations WHERE id = ANY($1::uuid[]) AND started_at IS NOT NULL`,
    [ids],
  );
  return rows.map((row) => row.wait_ms);
}

/** One after another: the admin connection runs one query at a time. */
async function waitsOfEach(database: BenchDatabase, groups: readonly (readonly string[])[]): Promise<number[][]> {
  const waits: number[][] = [];
  for (const ids of groups) waits.push(await waitsOf(database, ids));
  return waits;
}

async function untilStarted(database: BenchDatabase, ids: readonly string[], signal: AbortSignal): Promise<void> {
  for (;;) {
    const { rows } = await database.admin.query<{ n: string }>(`SELECT count(*) AS n FROM generations WHERE id = ANY($1::uuid[]) AND started_at IS NOT NULL`, [ids]);
    if (Number(rows[0]?.n) >= ids.length) return;
    await sleep(250, signal);
  }
}

async function dispatchCounts(database: BenchDatabase, from: Date, to: Date): Promise<Map<string, number>> {
  const { rows } = await database.admin.query<{ tenant_id: string; n: string }>(
    `SELECT tenant_id, count(*) AS n FROM generations WHERE dispatched_at > $1 AND dispatched_at <= $2 GROUP BY tenant_id`,
    [from, to],
  );
  return new Map(rows.map((row) => [row.tenant_id, Number(row.n)]));
}

async function runFairness(options: FairnessOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const database = await provisionDatabase(scope, progress);
  const { simulator, env } = await startBenchProvider(scope, { latencyMs: { min: 1000, max: 3000 }, createsPerMinute: options.createsPerMinute, readsPerMinute: 60_000, imageSize: 256 });
  const provider = { ...env, KILN_TENANT_IN_PROGRESS_CAP: '100000' }; // this measures shares of the budget, not the cap
  progress('kiln api: starting');
  const api = await startKiln(database.url, scope, signal, { keyLabel: 'fairness benchmark', env: { ...provider, KILN_ROLE: 'api' } });
  const url = `http://127.0.0.1:${api.port}`;
  for (let index = 0; index < options.workers; index += 1) {
    progress(`kiln worker ${index + 1}/${options.workers}: starting`);
    await startKilnWorker(database.url, scope, signal, { env: provider });
  }
  const setup = openDatabase({ connectionString: database.url, maxConnections: 1, applicationName: 'kiln-bench-setup' });
  scope.defer(() => setup.close());
  const tenant = async (name: string, tier: string): Promise<Tenant> => {
    const row = await createBenchTenant(setup.db, { name, tier, keyLabel: 'fairness benchmark' });
    const client = createKilnClient({ url, apiKey: row.apiKey });
    scope.defer(() => client.close());
    return { name, tier, id: row.id, client };
  };
  const submit = async (who: Tenant, count: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let offset = 0; offset < count; offset += 1000) {
      const size = Math.min(1000, count - offset);
      const { ids: batch } = await who.client.batch({ items: Array.from({ length: size }, (_, index) => ({ prompt: `${who.name} ${offset + index}`, platforms: ['thumbnail'] as const })) });
      ids.push(...batch);
    }
    return ids;
  };
  const names = Array.from({ length: options.smallTenants }, (_, index) => String.fromCharCode(66 + index)); // B, C, …
  const small = await Promise.all(names.map((name) => tenant(name, 'standard')));

  // 1. The small tenants in an empty system, together as they come behind A below. The budget's
  //    burst is used up first (behind A's backlog nobody gets it), so that whichever batch lands
  //    first does not take it alone and skew its own baseline.
  const warm = await tenant('warm-up', 'standard');
  await untilStarted(database, await submit(warm, CREATE_BURST), signal);
  progress(`empty system: ${small.length} tenants queue ${options.small} each`);
  const alone = await Promise.all(small.map((who) => submit(who, options.small)));
  await untilStarted(database, alone.flat(), signal);
  const aloneWaits = await waitsOfEach(database, alone);

  // 2. The same behind A's backlog.
  const a = await tenant('A', 'standard');
  progress(`tenant A queues ${options.backlog}`);
  const backlogAt = new Date();
  await submit(a, options.backlog);
  await database.admin.query('ANALYZE'); // fresh rows: keep plans sane (REFERENCE.md)
  await sleep(5000, signal);
  const createsBefore = simulator.stats().creates;
  const rateFrom = performance.now();
  progress(`behind the backlog: ${small.length} tenants queue ${options.small} each`);
  const contendedFrom = new Date();
  const behind = await Promise.all(small.map((who) => submit(who, options.small)));
  // The window in which every small tenant is still backlogged: until the first one has all dispatched.
  let contendedTo = new Date();
  for (;;) {
    const { rows } = await database.admin.query<{ undispatched: string; tenant_id: string }>(
      `SELECT tenant_id, count(*) FILTER (WHERE dispatched_at IS NULL) AS undispatched FROM generations WHERE id = ANY($1::uuid[]) GROUP BY tenant_id`,
      [behind.flat()],
    );
    if (rows.some((row) => Number(row.undispatched) === 0)) break;
    contendedTo = new Date();
    await sleep(100, signal);
  }
  await untilStarted(database, behind.flat(), signal);
  const behindWaits = await waitsOfEach(database, behind);
  const contended = await dispatchCounts(database, contendedFrom, contendedTo);
  const equalShares = [a, ...small].map((who) => contended.get(who.id) ?? 0);

  // 3. Tiers: free, standard and pro tenants queue beside A's backlog.
  const tiered = await Promise.all(TIERS.map((tier) => tenant(tier, tier)));
  const perTier = Math.ceil((options.windowSeconds * options.createsPerMinute) / 60);
  progress(`tiers: ${TIERS.join(', ')} queue ${perTier} each; ${options.windowSeconds} s window`);
  await Promise.all(tiered.map((who) => submit(who, perTier)));
  const weightedFrom = new Date();
  await sleep(options.windowSeconds * 1000, signal);
  const weightedTo = new Date();
  const createsAfter = simulator.stats().creates;
  const rateSeconds = (performance.now() - rateFrom) / 1000;
  const weighted = await dispatchCounts(database, weightedFrom, weightedTo);
  const weightedTenants = [a, ...tiered];
  const weightedCounts = weightedTenants.map((who) => weighted.get(who.id) ?? 0);
  const weightedTotal = weightedCounts.reduce((x, y) => x + y, 0);
  const weightSum = weightedTenants.reduce((sum, who) => sum + WEIGHTS[who.tier]!, 0);

  // What the dispatcher cost: its enqueue calls (one per tick that dispatched) and how late a booked slot was taken up.
  const { rows: ticks } = await database.admin.query<{ ticks: string; seconds: number }>(
    `SELECT count(DISTINCT dispatched_at) AS ticks, extract(epoch FROM max(dispatched_at) - min(dispatched_at))::float8 AS seconds FROM generations WHERE dispatched_at > $1`,
    [backlogAt],
  );
  const { rows: pickups } = await database.admin.query<{ late_ms: number }>(
    `SELECT (extract(epoch FROM g.started_at) * 1000 - (j.data->>'slotAt')::float8)::float8 AS late_ms
     FROM pgboss.job j JOIN generations g ON g.id = (j.data->>'generationId')::uuid
     WHERE j.name = 'kiln-generation' AND j.data ? 'slotAt' AND g.started_at IS NOT NULL AND j.retry_count = 0`,
  );
  const lateMs = pickups.map((row) => row.late_ms);
  const createRate = (createsAfter - createsBefore) / rateSeconds;
  const limitPerSecond = options.createsPerMinute / 60;
  const throttled = simulator.stats().throttled;
  const deferred = await database.admin.query<{ n: string }>(`SELECT count(*) AS n FROM generation_events WHERE stage = 'deferred'`).then((r) => Number(r.rows[0]?.n));

  const smallRows = small.map((who, index) => {
    const before = { p50: quantile(aloneWaits[index]!, 0.5), p95: quantile(aloneWaits[index]!, 0.95) };
    const after = { p50: quantile(behindWaits[index]!, 0.5), p95: quantile(behindWaits[index]!, 0.95) };
    return { tenant: who.name, aloneP50Ms: before.p50, aloneP95Ms: before.p95, behindP50Ms: after.p50, behindP95Ms: after.p95, ratioP50: after.p50 / before.p50, ratioP95: after.p95 / before.p95 };
  });
  // All small tenants' waits pooled, beside each tenant's own.
  const pooled = (() => {
    const before = aloneWaits.flat();
    const after = behindWaits.flat();
    const row = { tenant: 'all', aloneP50Ms: quantile(before, 0.5), aloneP95Ms: quantile(before, 0.95), behindP50Ms: quantile(after, 0.5), behindP95Ms: quantile(after, 0.95), ratioP50: 0, ratioP95: 0 };
    return { ...row, ratioP50: row.behindP50Ms / row.aloneP50Ms, ratioP95: row.behindP95Ms / row.aloneP95Ms };
  })();
  smallRows.push(pooled);
  const jain = jainIndex(equalShares);
  const weightedJain = jainIndex(weightedCounts.map((count, index) => count / WEIGHTS[weightedTenants[index]!.tier]!));
  const shares = weightedTenants.map((who, index) => ({ tenant: who.name, tier: who.tier, dispatched: weightedCounts[index]!, share: weightedCounts[index]! / weightedTotal, expected: WEIGHTS[who.tier]! / weightSum }));
  const json = {
    options,
    smallTenantWaits: smallRows,
    jainIndexEqualWeights: { index: jain, dispatched: Object.fromEntries([a, ...small].map((who, index) => [who.name, equalShares[index]])), windowMs: contendedTo.getTime() - contendedFrom.getTime() },
    weightedShares: { shares, jainIndexPerWeight: weightedJain, windowSeconds: options.windowSeconds },
    provider: { createsPerSecond: createRate, limitPerSecond, shareOfLimit: createRate / limitPerSecond, throttled, deferred },
    dispatcher: {
      enqueueCallsPerSecond: Number(ticks[0]?.ticks) / (ticks[0]?.seconds || 1),
      pickupLateMs: { p50: quantile(lateMs, 0.5), p95: quantile(lateMs, 0.95), p99: quantile(lateMs, 0.99), samples: lateMs.length },
    },
  };
  const text = [
    `fairness: tenant A ${integer(options.backlog)} queued, then ${small.length} tenants × ${options.small}; provider and budget ${integer(options.createsPerMinute)} creates/min; ${options.workers} worker processes`,
    '',
    formatTable(
      ['small tenant', 'alone p50 ms', 'alone p95 ms', 'behind A p50 ms', 'behind A p95 ms', 'ratio p50', 'ratio p95'],
      smallRows.map((row) => [row.tenant, ms(row.aloneP50Ms), ms(row.aloneP95Ms), ms(row.behindP50Ms), ms(row.behindP95Ms), row.ratioP50.toFixed(2), row.ratioP95.toFixed(2)]),
    ),
    '',
    `Jain's index, create throughput of A and ${names.join(', ')} while all are backlogged (${integer(json.jainIndexEqualWeights.windowMs)} ms): ${jain.toFixed(3)} (target ≥ 0.95); dispatched ${equalShares.join(' / ')}`,
    '',
    formatTable(
      ['tier window', 'tier', 'dispatched', 'share', 'expected'],
      shares.map((row) => [row.tenant, row.tier, integer(row.dispatched), percent(row.share), percent(row.expected)]),
    ),
    `Jain's index of dispatches per unit of weight: ${weightedJain.toFixed(3)}`,
    '',
    `provider creates: ${createRate.toFixed(2)}/s of ${limitPerSecond.toFixed(2)}/s limit = ${percent(createRate / limitPerSecond)} (target ≥ 99 %); 429s: ${throttled}; deferred events: ${deferred}`,
    `dispatcher: ${json.dispatcher.enqueueCallsPerSecond.toFixed(1)} enqueue calls/s; started − booked slot p50 ${ms(json.dispatcher.pickupLateMs.p50)} ms, p95 ${ms(json.dispatcher.pickupLateMs.p95)} ms, p99 ${ms(json.dispatcher.pickupLateMs.p99)} ms`,
  ].join('\n');
  const summary = [
    { figure: `small tenants' wait behind ${integer(options.backlog)}, p50 / p95`, value: `${ms(pooled.behindP50Ms)} / ${ms(pooled.behindP95Ms)} ms (${pooled.ratioP50.toFixed(2)}× / ${pooled.ratioP95.toFixed(2)}× alone)` },
    { figure: "Jain's index of create throughput; tier shares", value: `${jain.toFixed(3)}; ${shares.map((row) => percent(row.share)).join(' / ')}` },
    { figure: 'creates/s under the fair share (share of the limit), 429s', value: `${createRate.toFixed(2)} (${percent(createRate / limitPerSecond)}), ${throttled}` },
  ];
  return { text, json, summary };
}
