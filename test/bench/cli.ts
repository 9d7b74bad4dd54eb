// `npm run bench -- <benchmark> [flags] [--json]`: runs one named benchmark, bounded in time,
// and undoes everything it started — at the end, on error, on SIGINT/SIGTERM, on the hard stop.
// A new benchmark is one more entry in BENCHMARKS.
import { backlogBenchmark } from './backlog.ts';
import { enqueueBenchmark } from './enqueue.ts';
import { fairnessBenchmark } from './fairness.ts';
import { providerBenchmark } from './provider.ts';
import { realtimeBenchmark } from './realtime.ts';
import { UsageError, createScope, type Benchmark, type BenchmarkReport } from './harness.ts';

const BENCHMARKS: Readonly<Record<string, Benchmark>> = {
  enqueue: enqueueBenchmark,
  realtime: realtimeBenchmark,
  provider: providerBenchmark,
  fairness: fairnessBenchmark,
  backlog: backlogBenchmark,
};

/** Time allowed for cleanup after an interruption before the process exits regardless. */
const CLEANUP_GRACE_MS = 30_000;

function usage(): string {
  const entries = Object.entries(BENCHMARKS).map(([name, benchmark]) => `  ${name.padEnd(10)} ${benchmark.summary}\n${benchmark.usage}`);
  return [
    'Usage: npm run bench -- <benchmark> [flags] [--json]',
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

async function main(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const help = argv.includes('--help') || argv.includes('-h');
  const [name, ...args] = argv.filter((arg) => arg !== '--json' && arg !== '--help' && arg !== '-h');
  if (name === undefined || help) {
    (help ? process.stdout : process.stderr).write(`${usage()}\n`);
    return help ? 0 : 2;
  }
  const benchmark = Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (!benchmark) {
    process.stderr.write(`unknown benchmark "${name}"; choose one of: ${Object.keys(BENCHMARKS).join(', ')}\n\n${usage()}\n`);
    return 2;
  }
  let prepared;
  try {
    prepared = benchmark.prepare(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${usage()}\n`);
    return 2;
  }

  const controller = new AbortController();
  const scope = createScope((error) => progress(`cleanup step failed: ${error instanceof Error ? error.message : String(error)}`));
  let interruptedBySignal = false;
  const interrupt = (reason: string) => {
    if (controller.signal.aborted) return;
    progress(`${reason}: stopping and cleaning up…`);
    controller.abort(new Error(reason));
    // If cleanup itself hangs, leave anyway.
    setTimeout(() => process.exit(1), CLEANUP_GRACE_MS).unref();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    interruptedBySignal ||= !controller.signal.aborted;
    interrupt(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const hardStop = setTimeout(() => interrupt(`hard stop after ${Math.round(prepared.budgetMs / 1000)} s`), prepared.budgetMs);

  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  const running = prepared.run({ scope, progress, signal: controller.signal });
  running.catch(() => {}); // after an abort its own failure no longer matters
  let report: BenchmarkReport | undefined;
  try {
    report = await Promise.race([running, aborted]);
  } catch (error) {
    if (controller.signal.aborted && error === controller.signal.reason) progress(`interrupted (${controller.signal.reason instanceof Error ? controller.signal.reason.message : 'aborted'})`);
    else progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    clearTimeout(hardStop);
    progress('cleaning up');
    await scope.close();
  }
  if (!report) return interruptedBySignal ? 130 : 1;
  const output = json ? `${JSON.stringify(report.json, null, 2)}\n` : `${report.text}\n`;
  // Exit only once stdout has taken it all (it may be a slow pipe).
  await new Promise<void>((resolve) => process.stdout.write(output, () => resolve()));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
