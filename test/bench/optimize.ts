// The optimiser benchmark: 1,000 product photos across 5 stores through `operation: 'optimize'`
// against the simulated provider at Replicate's limits (600 creates/min, 3,000 reads/min). Half
// the photos are small enough to need an upscale first (two predictions), half only a background
// removal (one). The stores are subjects of one tenant that shares by subject, so each store has
// its own fair share of the create budget. It reports photos per minute against what the create
// budget allows (its limit ÷ the predictions each photo needed), each store's share of the
// dispatched steps while all were waiting, p50/p95 time per photo, and the bytes before and after.
import sharp from 'sharp';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createKilnClient } from '../../client-sdk/index.ts';
import { openDatabase } from '../../db/database.ts';
import { provisionDatabase } from './database.ts';
import { numberFlag, readFlags, sleep, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { createBenchTenant, startBenchProvider, startKiln, startKilnWorker } from './servers.ts';
import { formatTable, integer, ms, percent, quantile } from './table.ts';

export interface OptimizeOptions {
  photos: number;
  stores: number;
  createsPerMinute: number;
  workers: number;
}

export const optimizeBenchmark: Benchmark = {
  summary: 'product photos through the optimiser: photos/min against the create budget, store shares, time per photo, bytes',
  usage: [
    '      --photos N             product photos (default 1000)',
    '      --stores N             stores they are spread over, each a subject (default 5)',
    '      --creates N            provider create limit per minute, also Kiln\'s budget (default 600)',
    '      --workers N            worker processes (default 2)',
  ].join('\n'),
  prepare(args) {
    const text = readFlags(args, ['photos', 'stores', 'creates', 'workers']);
    const options: OptimizeOptions = {
      photos: numberFlag('photos', text('photos'), 1000, { min: 10, max: 20_000, integer: true }),
      stores: numberFlag('stores', text('stores'), 5, { min: 1, max: 50, integer: true }),
      createsPerMinute: numberFlag('creates', text('creates'), 600, { min: 60, max: 60_000 }),
      workers: numberFlag('workers', text('workers'), 2, { min: 1, max: 8, integer: true }),
    };
    return { budgetMs: 20 * 60_000, run: (context) => runOptimize(options, context) };
  },
};

/** The target short edge the benchmark asks for (Kiln's default). */
const TARGET_SHORT_EDGE = 1024;

/**
 * A product photo, distinct for each index: a coloured box on a light backdrop, as a store
 * photographs it (JPEG). Even indexes are small (400–700 px short edge: an upscale first), odd
 * ones large enough (1024–1200 px: only the background removal).
 */
async function productPhoto(index: number): Promise<Buffer> {
  const small = index % 2 === 0;
  const shortEdge = small ? 400 + ((index * 37) % 300) : TARGET_SHORT_EDGE + ((index * 53) % 176);
  const width = Math.round(shortEdge * (1 + ((index * 13) % 5) / 10));
  const hue = (index * 47) % 360;
  const box = await sharp({ create: { width: Math.round(width * 0.45), height: Math.round(shortEdge * 0.55), channels: 3, background: `hsl(${hue}, 60%, 40%)` } }).png().toBuffer();
  return sharp({ create: { width, height: shortEdge, channels: 3, background: '#e4e4e4' } })
    .composite([{ input: box, gravity: 'centre' }])
    .jpeg({ quality: 88 })
    .toBuffer();
}

interface PhotoRow {
  id: string;
  subject: string;
  state: string;
  seconds: number | null;
  steps: number;
  bytes_before: number | null;
  bytes_after: number | null;
}

async function runOptimize(options: OptimizeOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const { scope, progress, signal } = context;
  const database = await provisionDatabase(scope, progress);
  const { simulator, env } = await startBenchProvider(scope, { latencyMs: { min: 1000, max: 3000 }, createsPerMinute: options.createsPerMinute, readsPerMinute: 3000 });
  // One asset folder for all: the API keeps the photos, the workers read them and store the results.
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-optimize-'));
  scope.defer(() => rm(dataDir, { recursive: true, force: true }));
  // This measures the budget's share among stores, not the in-progress cap.
  const shared = { ...env, KILN_DATA_DIR: dataDir, KILN_TENANT_IN_PROGRESS_CAP: '100000' };
  progress('kiln api: starting');
  const api = await startKiln(database.url, scope, signal, { keyLabel: 'optimize benchmark', env: { ...shared, KILN_ROLE: 'api' } });
  const url = `http://127.0.0.1:${api.port}`;
  for (let index = 0; index < options.workers; index += 1) {
    progress(`kiln worker ${index + 1}/${options.workers}: starting`);
    // Webhooks to the API tell the workers when a prediction is done.
    await startKilnWorker(database.url, scope, signal, { env: { ...shared, KILN_PUBLIC_URL: url } });
  }
  const setup = openDatabase({ connectionString: database.url, maxConnections: 1, applicationName: 'kiln-bench-setup' });
  scope.defer(() => setup.close());
  const tenant = await createBenchTenant(setup.db, { name: 'shop', tier: 'standard', shareBy: 'subject', keyLabel: 'optimize benchmark' });
  const client = createKilnClient({ url, apiKey: tenant.apiKey });
  scope.defer(() => client.close());

  progress(`uploading ${integer(options.photos)} photos`);
  const sources: { id: string; bytes: number }[] = [];
  for (let offset = 0; offset < options.photos; offset += 20) {
    signal.throwIfAborted();
    const chunk = await Promise.all(Array.from({ length: Math.min(20, options.photos - offset) }, async (_, index) => client.sources.upload(await productPhoto(offset + index))));
    sources.push(...chunk.map((source) => ({ id: source.id, bytes: source.bytes })));
  }
  const stores = Array.from({ length: options.stores }, (_, index) => `store-${index + 1}`);

  progress(`${stores.length} stores queue ${integer(options.photos)} photos at once`);
  const startedAt = new Date();
  const ids = (
    await Promise.all(
      stores.map(async (store, storeIndex) => {
        const mine = sources.filter((_, index) => index % stores.length === storeIndex);
        const { ids: batch } = await client.batch({
          items: mine.map((source) => ({ operation: 'optimize' as const, sourceId: source.id, subject: store, platforms: ['instagram-post' as const, 'thumbnail' as const], formats: ['webp' as const] })),
        });
        return batch;
      }),
    )
  ).flat();
  const createsBefore = simulator.stats().creates;

  // Until every photo is final; the window in which every store still had steps waiting is where shares are read.
  let contendedTo = new Date();
  let allWaiting = true;
  for (;;) {
    const { rows } = await database.admin.query<{ subject: string; waiting: string; open: string }>(
      `SELECT c.subject, count(*) FILTER (WHERE p.state = 'queued' AND p.dispatched_at IS NULL) AS waiting,
         count(DISTINCT c.id) FILTER (WHERE c.state IN ('queued', 'running')) AS open
       FROM generations c LEFT JOIN generations p ON p.part_of = c.id WHERE c.id = ANY($1::uuid[]) GROUP BY c.subject`,
      [ids],
    );
    if (allWaiting && rows.length === stores.length && rows.every((row) => Number(row.waiting) > 0)) contendedTo = new Date();
    else allWaiting = false;
    const open = rows.reduce((sum, row) => sum + Number(row.open), 0);
    progress(`${integer(ids.length - open)} of ${integer(ids.length)} photos done`);
    if (open === 0) break;
    await sleep(2000, signal);
  }
  const createsAfter = simulator.stats().creates;
  // Each step is created once at the provider (its webhook's tag is its generation); more is paying twice.
  const repeatedCreates = Object.values(simulator.stats().createsByWebhookTag).reduce((sum, creates) => sum + Math.max(0, creates - 1), 0);

  const { rows: photos } = await database.admin.query<PhotoRow>(
    `SELECT c.id, c.subject, c.state,
       extract(epoch FROM c.finished_at - c.created_at)::float8 AS seconds,
       (SELECT count(*) FROM generations p WHERE p.part_of = c.id)::int AS steps,
       (c.request->'input'->>'bytes')::int AS bytes_before,
       (SELECT sum(a.bytes) FROM assets a WHERE a.generation_id = c.id AND a.kind = 'variant')::int AS bytes_after
     FROM generations c WHERE c.id = ANY($1::uuid[])`,
    [ids],
  );
  const { rows: dispatched } = await database.admin.query<{ subject: string; n: string }>(
    `SELECT p.subject, count(*) AS n FROM generations p JOIN generations c ON c.id = p.part_of
     WHERE c.id = ANY($1::uuid[]) AND p.dispatched_at > $2 AND p.dispatched_at <= $3 GROUP BY p.subject`,
    [ids, startedAt, contendedTo],
  );
  const lastFinish = await database.admin
    .query<{ at: Date }>(`SELECT max(finished_at) AS at FROM generations WHERE id = ANY($1::uuid[])`, [ids])
    .then((result) => result.rows[0]?.at ?? new Date());
  const minutes = (lastFinish.getTime() - startedAt.getTime()) / 60_000;
  const succeeded = photos.filter((photo) => photo.state === 'succeeded');
  const steps = succeeded.reduce((sum, photo) => sum + photo.steps, 0);
  const stepsPerPhoto = steps / Math.max(1, succeeded.length);
  const allowedPerMinute = options.createsPerMinute / stepsPerPhoto;
  const photosPerMinute = succeeded.length / minutes;
  const seconds = succeeded.map((photo) => photo.seconds ?? 0);
  const bytesBefore = succeeded.reduce((sum, photo) => sum + (photo.bytes_before ?? 0), 0);
  const bytesAfter = succeeded.reduce((sum, photo) => sum + (photo.bytes_after ?? 0), 0);
  const dispatchedTotal = dispatched.reduce((sum, row) => sum + Number(row.n), 0);
  const storeRows = stores.map((store) => {
    const own = succeeded.filter((photo) => photo.subject === store);
    const times = own.map((photo) => photo.seconds ?? 0);
    const share = Number(dispatched.find((row) => row.subject === store)?.n ?? 0) / Math.max(1, dispatchedTotal);
    return { store, photos: own.length, share, p50Seconds: quantile(times, 0.5), p95Seconds: quantile(times, 0.95) };
  });
  const throttled = simulator.stats().throttled;

  const json = {
    options,
    photos: { total: ids.length, succeeded: succeeded.length, failed: photos.length - succeeded.length, upscaled: succeeded.filter((photo) => photo.steps === 2).length },
    throughput: { photosPerMinute, allowedPerMinute, shareOfAllowed: photosPerMinute / allowedPerMinute, stepsPerPhoto, minutes, creates: createsAfter - createsBefore, repeatedCreates, throttled },
    timePerPhotoSeconds: { p50: quantile(seconds, 0.5), p95: quantile(seconds, 0.95) },
    stores: storeRows,
    sharesWindowMs: contendedTo.getTime() - startedAt.getTime(),
    bytes: { before: bytesBefore, after: bytesAfter, saved: bytesBefore - bytesAfter },
  };
  const mb = (bytes: number) => `${(bytes / 1_000_000).toFixed(1)} MB`;
  const text = [
    `optimize: ${integer(ids.length)} photos across ${stores.length} stores (subjects of one tenant sharing by subject); provider and budget ${integer(options.createsPerMinute)} creates/min, 3,000 reads/min; ${options.workers} worker processes; variants instagram-post + thumbnail, WebP`,
    '',
    `photos: ${integer(succeeded.length)} succeeded, ${integer(json.photos.failed)} failed; ${integer(json.photos.upscaled)} needed an upscale (${stepsPerPhoto.toFixed(2)} predictions a photo)`,
    `throughput: ${photosPerMinute.toFixed(1)} photos/min of ${allowedPerMinute.toFixed(1)} the create budget allows = ${percent(photosPerMinute / allowedPerMinute)}; ${integer(json.throughput.creates)} creates in ${minutes.toFixed(2)} min (a step created twice: ${repeatedCreates}; creates beyond the steps: ${json.throughput.creates - steps}); 429s: ${throttled}`,
    `time per photo (queued → catalogue images): p50 ${ms(json.timePerPhotoSeconds.p50 * 1000)} ms, p95 ${ms(json.timePerPhotoSeconds.p95 * 1000)} ms`,
    '',
    formatTable(
      ['store', 'photos', 'share of steps while all waited', 'p50 s', 'p95 s'],
      storeRows.map((row) => [row.store, integer(row.photos), percent(row.share), row.p50Seconds.toFixed(1), row.p95Seconds.toFixed(1)]),
    ),
    `(shares read over the first ${integer(json.sharesWindowMs)} ms, while every store still had steps waiting; equal would be ${percent(1 / stores.length)} each)`,
    '',
    `bytes: photos ${mb(bytesBefore)} → catalogue variants ${mb(bytesAfter)} (${percent(1 - bytesAfter / Math.max(1, bytesBefore))} saved)`,
  ].join('\n');
  const summary = [
    { figure: `optimised photos/min (share of what ${integer(options.createsPerMinute)} creates/min allow)`, value: `${photosPerMinute.toFixed(1)} (${percent(photosPerMinute / allowedPerMinute)})` },
    { figure: 'time per optimised photo p50 / p95', value: `${json.timePerPhotoSeconds.p50.toFixed(1)} / ${json.timePerPhotoSeconds.p95.toFixed(1)} s` },
    { figure: 'store shares of steps; bytes saved', value: `${storeRows.map((row) => percent(row.share)).join(' / ')}; ${percent(1 - bytesAfter / Math.max(1, bytesBefore))}` },
  ];
  return { text, json, summary };
}
