// The render benchmark: the finish phase's rendering (`renderVariants`: format sniffing, pixel
// limits, one decode, every variant in parallel, content hashes) against a bare sharp loop that
// does only the pixel work (decode once, then `Promise.all` of the same resizes and encodes), on
// the same sources and presets, at the worker's render concurrency. Then generations/s per core
// for the default request, which says how many worker cores keep up with a provider account.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { PLATFORMS, variantSpecs, type ImageFormat, type VariantSpec } from '../../jobs/render/presets.ts';
import { renderVariants, type RenderLimits } from '../../jobs/render/render-variants.ts';
import { renderImage } from '../../jobs/simulator/images.ts';
import { loadConfig } from '../../server/config.ts';
import { generateInput } from '../../server/schemas.ts';
import { numberFlag, readFlags, type Benchmark, type BenchmarkContext, type BenchmarkReport } from './harness.ts';
import { formatTable, integer, ms, percent, quantile, round } from './table.ts';

export interface RenderOptions {
  /** Measured seconds per case and path (split in two halves, alternating with the other path). */
  durationSeconds: number;
}

/** The formats compared: WebP is the default, AVIF the costliest encode, PNG the lossless one. */
const FORMATS = ['webp', 'avif', 'png'] as const satisfies readonly ImageFormat[];
/** Replicate's accounts create 600 predictions a minute: the pace the worker's renders must keep. */
const PROVIDER_GENERATIONS_PER_SECOND = 10;
const TARGET_SHARE_OF_BARE = 0.9;

export const renderBenchmark: Benchmark = {
  summary: 'variants/s of the finish phase\'s rendering vs. a bare sharp loop; generations/s per core',
  usage: '      --duration SECONDS     measured time per source, format and path (default 4)',
  prepare(args) {
    const text = readFlags(args, ['duration']);
    const options: RenderOptions = { durationSeconds: numberFlag('duration', text('duration'), 4, { min: 1, max: 120 }) };
    const cases = SOURCES.length * FORMATS.length + 1;
    // Each case: two measured paths, warm-ups, and the renders still running when time is up.
    return { budgetMs: cases * (2 * options.durationSeconds + 30) * 1000 + 60_000, run: (context) => runRender(options, context) };
  },
};

interface Source {
  name: string;
  bytes: Buffer;
}

/** What a model hands back: the simulator's pictures (flat shapes and text) and a photo-like one (noise and gradients, which compress far worse). */
const SOURCES = [
  { name: 'simulator 1024×1024', make: () => renderImage({ prompt: 'a lighthouse at dusk, bench source', seed: 1, index: 0, width: 1024, height: 1024, format: 'png', quality: 100 }) },
  { name: 'simulator 1344×768', make: () => renderImage({ prompt: 'a wide harbour, bench source', seed: 2, index: 0, width: 1344, height: 768, format: 'png', quality: 100 }) },
  { name: 'photo-like 1024×1024', make: photoLike },
] as const;

async function photoLike(): Promise<Buffer> {
  const size = 1024;
  const noise = await sharp({ create: { width: size, height: size, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
    .blur(1.5)
    .png()
    .toBuffer();
  const gradient = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><defs><linearGradient id="g" x2="1" y2="1"><stop offset="0" stop-color="#c84"/><stop offset="1" stop-color="#248"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/></svg>`,
  );
  return sharp(gradient).composite([{ input: noise, blend: 'overlay' }]).png().toBuffer();
}

interface PathRun {
  renders: number;
  seconds: number;
  latenciesMs: number[];
}

interface CaseResult {
  source: string;
  format: ImageFormat;
  variantsPerRender: number;
  kiln: PathRun;
  bare: PathRun;
}

type Render = (source: Buffer) => Promise<unknown>;

async function runRender(options: RenderOptions, context: BenchmarkContext): Promise<BenchmarkReport> {
  const config = loadConfig({});
  const limits: RenderLimits = { maxInputPixels: config.limits.maxInputPixels, timeoutSeconds: config.worker.renderTimeoutSeconds };
  const concurrency = config.worker.concurrency.finish;
  const sources: Source[] = await Promise.all(SOURCES.map(async (source) => ({ name: source.name, bytes: await source.make() })));
  const allPlatforms = (format: ImageFormat) => variantSpecs(PLATFORMS, [], [format]);

  const cases: CaseResult[] = [];
  for (const source of sources) {
    for (const format of FORMATS) {
      const specs = allPlatforms(format);
      context.progress(`${source.name}, ${format}: ${specs.length} variants each, ${concurrency} at once`);
      const { kiln, bare } = await alternate(
        { kiln: (bytes) => renderVariants(bytes, specs, 'centre', limits), bare: (bytes) => bareRender(bytes, specs) },
        source.bytes,
        concurrency,
        options.durationSeconds,
        context.signal,
      );
      cases.push({ source: source.name, format, variantsPerRender: specs.length, kiln, bare });
    }
  }

  // The default request, as `generate` fills it in, on the simulator's square picture.
  const request = generateInput.parse({ prompt: 'the default request' });
  const defaultSpecs = variantSpecs(request.platforms, [], request.formats);
  context.progress(`default request (${defaultSpecs.map((spec) => `${spec.platform} ${spec.format}`).join(', ')}), ${concurrency} at once`);
  const { kiln: defaultRun } = await alternate(
    { kiln: (bytes) => renderVariants(bytes, defaultSpecs, 'centre', limits), bare: (bytes) => bareRender(bytes, defaultSpecs) },
    sources[0]!.bytes,
    concurrency,
    options.durationSeconds,
    context.signal,
  );
  const cores = os.availableParallelism();
  const generationsPerSecond = defaultRun.renders / defaultRun.seconds;
  const perCore = generationsPerSecond / cores;
  return report({ options, concurrency, cores, cases, defaultSpecs, generationsPerSecond, perCore, defaultRun });
}

/** Only the pixel work: one decode, then the same resizes and encodes Kiln makes (render-variants.ts's settings). */
async function bareRender(source: Buffer, specs: readonly VariantSpec[]): Promise<Buffer[]> {
  const decoded = await sharp(source).raw().toBuffer({ resolveWithObject: true });
  const raw = { width: decoded.info.width, height: decoded.info.height, channels: decoded.info.channels };
  return Promise.all(
    specs.map((spec) => {
      const resized = sharp(decoded.data, { raw }).resize(spec.width, spec.height, { fit: 'cover', position: 'centre' });
      switch (spec.format) {
        case 'webp':
          return resized.webp({ quality: 80, effort: 4 }).toBuffer();
        case 'avif':
          return resized.avif({ quality: 55, effort: 2 }).toBuffer();
        case 'png':
          return resized.png({ compressionLevel: 8, adaptiveFiltering: true }).toBuffer();
        case 'jpeg':
          return resized.jpeg({ quality: 82, mozjpeg: true }).toBuffer();
      }
    }),
  );
}

/** Each path in two halves, bare first, so drift in the machine's speed falls on both. */
async function alternate(paths: { kiln: Render; bare: Render }, source: Buffer, concurrency: number, seconds: number, signal: AbortSignal) {
  await paths.bare(source); // warm-up: libvips' caches and the thread pool
  await paths.kiln(source);
  const halves = { kiln: [] as PathRun[], bare: [] as PathRun[] };
  for (let half = 0; half < 2; half += 1) {
    halves.bare.push(await measure(paths.bare, source, concurrency, seconds / 2, signal));
    halves.kiln.push(await measure(paths.kiln, source, concurrency, seconds / 2, signal));
  }
  const merge = (runs: PathRun[]): PathRun => ({
    renders: runs.reduce((sum, run) => sum + run.renders, 0),
    seconds: runs.reduce((sum, run) => sum + run.seconds, 0),
    latenciesMs: runs.flatMap((run) => run.latenciesMs),
  });
  return { kiln: merge(halves.kiln), bare: merge(halves.bare) };
}

/** `concurrency` loops rendering the source back to back until `seconds` have passed. */
async function measure(render: Render, source: Buffer, concurrency: number, seconds: number, signal: AbortSignal): Promise<PathRun> {
  const latenciesMs: number[] = [];
  const started = performance.now();
  const endAt = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < endAt && !signal.aborted) {
        const begun = performance.now();
        await render(source);
        latenciesMs.push(performance.now() - begun);
      }
    }),
  );
  signal.throwIfAborted();
  return { renders: latenciesMs.length, seconds: (performance.now() - started) / 1000, latenciesMs };
}

/** Rates with one decimal while they are small: 8.4, 123. */
const rate = (value: number) => (value < 100 ? value.toFixed(1) : integer(value));

function report(input: {
  options: RenderOptions;
  concurrency: number;
  cores: number;
  cases: CaseResult[];
  defaultSpecs: VariantSpec[];
  generationsPerSecond: number;
  perCore: number;
  defaultRun: PathRun;
}): BenchmarkReport {
  const variantsPerSecond = (run: PathRun, perRender: number) => (run.renders * perRender) / run.seconds;
  const rows = input.cases.map((entry) => {
    const kiln = variantsPerSecond(entry.kiln, entry.variantsPerRender);
    const bare = variantsPerSecond(entry.bare, entry.variantsPerRender);
    return {
      source: entry.source,
      format: entry.format,
      variantsPerRender: entry.variantsPerRender,
      kilnVariantsPerSecond: round(kiln, 1),
      bareVariantsPerSecond: round(bare, 1),
      shareOfBare: round(kiln / bare, 3),
      kilnP99Ms: round(quantile(entry.kiln.latenciesMs, 0.99), 1),
      bareP99Ms: round(quantile(entry.bare.latenciesMs, 0.99), 1),
    };
  });
  const worst = Math.min(...rows.map((row) => row.shareOfBare));
  const coresForProvider = PROVIDER_GENERATIONS_PER_SECOND / input.perCore;
  const sharpVersion = sharp.versions.sharp ?? 'unknown';
  const text = [
    `render benchmark — ${input.cores} cores, Node ${process.version}, sharp ${sharpVersion} (libvips ${sharp.versions.vips}), ${input.concurrency} renders at once (the worker's default)`,
    `each case ${input.options.durationSeconds} s per path, alternating bare and Kiln in halves; a render is one source into all ${PLATFORMS.length} platform presets in one format`,
    '',
    formatTable(
      ['source', 'format', 'Kiln variants/s', 'bare variants/s', 'Kiln / bare', 'Kiln p99 ms', 'bare p99 ms'],
      rows.map((row) => [row.source, row.format, rate(row.kilnVariantsPerSecond), rate(row.bareVariantsPerSecond), percent(row.shareOfBare), ms(row.kilnP99Ms), ms(row.bareP99Ms)]),
    ),
    '',
    `default request (${input.defaultSpecs.map((spec) => `${spec.platform} ${spec.format}`).join(', ')}): ${input.generationsPerSecond.toFixed(1)} generations/s, ` +
      `${input.perCore.toFixed(1)} per core, p99 ${ms(quantile(input.defaultRun.latenciesMs, 0.99))} ms → ${coresForProvider.toFixed(1)} cores render at the ${PROVIDER_GENERATIONS_PER_SECOND}/s a Replicate account creates`,
    `target: Kiln ≥ ${percent(TARGET_SHARE_OF_BARE)} of bare in every case → ${worst >= TARGET_SHARE_OF_BARE ? 'met' : `NOT met: ${percent(worst)} at worst`}`,
  ].join('\n');
  return {
    text,
    summary: [
      { figure: 'rendering, Kiln\'s share of a bare sharp loop (worst case)', value: percent(worst) },
      { figure: 'default request: generations/s per core; cores for 10 creates/s', value: `${input.perCore.toFixed(1)}; ${coresForProvider.toFixed(1)}` },
    ],
    json: {
      benchmark: 'render',
      conditions: { cores: input.cores, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown', node: process.version, sharp: sharpVersion, vips: sharp.versions.vips, concurrency: input.concurrency, durationSeconds: input.options.durationSeconds },
      cases: rows,
      defaultRequest: {
        variants: input.defaultSpecs.map((spec) => `${spec.platform} ${spec.format}`),
        generationsPerSecond: round(input.generationsPerSecond, 2),
        generationsPerSecondPerCore: round(input.perCore, 2),
        p99Ms: round(quantile(input.defaultRun.latenciesMs, 0.99), 1),
        coresForProviderLimit: round(coresForProvider, 2),
      },
      target: { shareOfBare: TARGET_SHARE_OF_BARE, worstShare: worst, met: worst >= TARGET_SHARE_OF_BARE },
    },
  };
}
