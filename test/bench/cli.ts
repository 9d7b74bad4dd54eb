// `npm run bench -- <benchmark> [flags] [--json]`: runs one named benchmark, bounded in time,
// and undoes everything it started — at the end, on error, on SIGINT/SIGTERM, on the hard stop.
// `npm run bench` alone runs them all in turn (SUITE) and ends with one summary table.
// A new benchmark is one more entry in BENCHMARKS (and in SUITE).
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { backlogBenchmark } from './backlog.ts';
import { enqueueBenchmark } from './enqueue.ts';
import { fairnessBenchmark } from './fairness.ts';
import { optimizeBenchmark } from './optimize.ts';
import { providerBenchmark } from './provider.ts';
import { realtimeBenchmark } from './realtime.ts';
import { renderBenchmark } from './render.ts';
import { UsageError, createScope, type Benchmark, type BenchmarkReport, type PreparedBenchmark } from './harness.ts';
import { formatTable } from './table.ts';

const BENCHMARKS: Readonly<Record<string, Benchmark>> = {
  enqueue: enqueueBenchmark,
  realtime: realtimeBenchmark,
  provider: providerBenchmark,
  fairness: fairnessBenchmark,
  backlog: backlogBenchmark,
  render: renderBenchmark,
  optimize: optimizeBenchmark,
};

/**
 * `npm run bench` with no name runs every benchmark in this order with these flags: each one's
 * defaults, except where a smaller run says the same thing sooner, so that all of them
 * together stay under 15 minutes on 2 cores.
 */
const SUITE: readonly { name: keyof typeof BENCHMARKS; args: readonly string[] }[] = [
  { name: 'enqueue', args: [] },
  { name: 'realtime', args: ['--idle', '1000'] },
  { name: 'provider', args: ['--generations', '1000'] },
  { name: 'fairness', args: ['--backlog', '3000'] },
  { name: 'backlog', args: ['--sizes', '1000,20000,50000', '--runs', '30'] },
  { name: 'render', args: [] },
  { name: 'optimize', args: ['--photos', '100'] },
];

/** Time allowed for cleanup after an interruption before the process exits regardless. */
const CLEANUP_GRACE_MS = 30_000;

function usage(): string {
  const entries = Object.entries(BENCHMARKS).map(([name, benchmark]) => `  ${name.padEnd(10)} ${benchmark.summary}\n${benchmark.usage}`);
  return [
    'Usage: npm run bench -- [<benchmark> [flags]] [--json]',
    '',
    `With no benchmark named, runs them all in turn (${SUITE.map((entry) => [entry.name, ...entry.args].join(' ')).join('; ')}) and ends with one summary table.`,
    '',
    'Benchmarks:',
    ...entries,
    '',
    '  --json                     print one JSON object on stdout (progress goes to stderr)',
    '',
    'Uses DATABASE_URL if set (a fresh database, dropped afterwards); otherwise an embedded PostgreSQL in a temp folder.',
  ].join('\n');
}

const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);

/** Aborted by SIGINT or SIGTERM; every benchmark run after that stops and cleans up. */
const interruption = new AbortController();
let interruptedBySignal = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (interruption.signal.aborted) return;
  interruptedBySignal = true;
  progress(`${signal}: stopping and cleaning up…`);
  interruption.abort(new Error(signal));
  // If cleanup itself hangs, leave anyway.
  setTimeout(() => process.exit(130), CLEANUP_GRACE_MS).unref();
};

/** Runs one prepared benchmark within its budget; undefined if it failed or was interrupted (said on stderr). */
async function runPrepared(name: string, prepared: PreparedBenchmark): Promise<BenchmarkReport | undefined> {
  const controller = new AbortController();
  const scope = createScope((error) => progress(`cleanup step failed: ${error instanceof Error ? error.message : String(error)}`));
  const stop = (reason: unknown) => controller.signal.aborted || controller.abort(reason);
  const onInterrupt = () => stop(interruption.signal.reason);
  interruption.signal.addEventListener('abort', onInterrupt, { once: true });
  if (interruption.signal.aborted) onInterrupt();
  const hardStop = setTimeout(() => {
    progress(`${name}: hard stop after ${Math.round(prepared.budgetMs / 1000)} s: stopping and cleaning up…`);
    stop(new Error(`hard stop after ${Math.round(prepared.budgetMs / 1000)} s`));
  }, prepared.budgetMs);

  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  const running = prepared.run({ scope, progress, signal: controller.signal });
  running.catch(() => {}); // after an abort its own failure no longer matters
  try {
    return await Promise.race([running, aborted]);
  } catch (error) {
    if (controller.signal.aborted && error === controller.signal.reason) progress(`${name}: interrupted (${controller.signal.reason instanceof Error ? controller.signal.reason.message : 'aborted'})`);
    else progress(`${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return undefined;
  } finally {
    clearTimeout(hardStop);
    interruption.signal.removeEventListener('abort', onInterrupt);
    progress(`${name}: cleaning up`);
    await scope.close();
  }
}

/** Validates the flags of every run first, so a typo fails before anything starts. */
function prepareAll(runs: readonly { name: string; args: readonly string[] }[]): { name: string; prepared: PreparedBenchmark }[] | undefined {
  try {
    return runs.map(({ name, args }) => ({ name, prepared: BENCHMARKS[name]!.prepare(args) }));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${usage()}\n`);
    return undefined;
  }
}

function suiteReport(reports: readonly { name: string; report: BenchmarkReport | undefined }[], startedAt: number): { text: string; json: Record<string, unknown> } {
  const minutes = (performance.now() - startedAt) / 60_000;
  const rows = reports.flatMap(({ name, report }) => (report ? report.summary.map((row) => [`${name}: ${row.figure}`, row.value]) : [[`${name}: did not finish (see the log above)`, '–']]));
  const cpus = os.cpus();
  const text = [
    ...reports.flatMap(({ report }) => (report ? [report.text, ''] : [])),
    `summary — ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, all benchmarks in ${minutes.toFixed(1)} min`,
    formatTable(['benchmark: figure', 'value'], rows),
  ].join('\n');
  const json = {
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model.trim() ?? 'unknown', node: process.version, loadAverage: os.loadavg()[0] },
    minutes: Math.round(minutes * 10) / 10,
    benchmarks: Object.fromEntries(reports.map(({ name, report }) => [name, report ? report.json : null])),
    summary: reports.flatMap(({ name, report }) => (report ? report.summary.map((row) => ({ benchmark: name, ...row })) : [{ benchmark: name, figure: 'did not finish', value: '–' }])),
  };
  return { text, json };
}

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const help = argv.includes('--help') || argv.includes('-h');
  const [name, ...args] = argv.filter((arg) => arg !== '--json' && arg !== '--help' && arg !== '-h');
  if (help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (name !== undefined && !Object.hasOwn(BENCHMARKS, name)) {
    process.stderr.write(`unknown benchmark "${name}"; choose one of: ${Object.keys(BENCHMARKS).join(', ')}\n\n${usage()}\n`);
    return 2;
  }
  const runs = prepareAll(name === undefined ? SUITE : [{ name, args }]);
  if (!runs) return 2;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = performance.now();
  const reports: { name: string; report: BenchmarkReport | undefined }[] = [];
  for (const run of runs) {
    if (interruption.signal.aborted) break;
    if (runs.length > 1) progress(`— ${run.name} (${reports.length + 1} of ${runs.length}) —`);
    reports.push({ name: run.name, report: await runPrepared(run.name, run.prepared) });
  }
  if (interruptedBySignal) return 130;
  const single = runs.length === 1 ? reports[0]?.report : undefined;
  if (runs.length === 1 && !single) return 1;
  const output = single ?? suiteReport(reports, startedAt);
  const printed = json ? `${JSON.stringify(output.json, null, 2)}\n` : `${output.text}\n`;
  // Exit only once stdout has taken it all (it may be a slow pipe).
  await new Promise<void>((resolve) => process.stdout.write(printed, () => resolve()));
  return reports.every(({ report }) => report) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
