import { parseArgs } from 'node:util';
// What every benchmark shares: its shape (so cli.ts can list and run it), a scope that
// undoes what a run started, and flag validation with errors a person can act on.

/** A bad command line: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface BenchmarkReport {
  /** The human table. */
  text: string;
  /** Its headline figures, for the table `npm run bench` prints after running every benchmark. */
  summary: readonly SummaryRow[];
  /** The same figures plus the conditions, printed as one JSON object with --json. */
  json: Record<string, unknown>;
}

export interface SummaryRow {
  figure: string;
  value: string;
}

export interface BenchmarkContext {
  /** Undo steps registered here run in reverse at the end, on error, on SIGINT and on the hard stop. */
  scope: Scope;
  /** Progress for a person watching: goes to stderr, so stdout stays one JSON object with --json. */
  progress(line: string): void;
  /** Aborted on SIGINT or the hard stop; long waits should give up when it fires. */
  signal: AbortSignal;
}

export interface PreparedBenchmark {
  /** The whole run is stopped after this long, whatever it is doing. */
  budgetMs: number;
  run(context: BenchmarkContext): Promise<BenchmarkReport>;
}

export interface Benchmark {
  summary: string;
  /** Flag lines for the help text. */
  usage: string;
  /** Validates the flags (throwing UsageError) before anything is started. */
  prepare(args: readonly string[]): PreparedBenchmark;
}

export interface Scope {
  /** After close() has begun, the step runs at once: whatever a late step started is undone too. */
  defer(step: () => Promise<void> | void): void;
  /** Runs the deferred steps newest first; safe to call more than once. */
  close(): Promise<void>;
}

export function createScope(onStepError: (error: unknown) => void): Scope {
  const steps: (() => Promise<void> | void)[] = [];
  let closing: Promise<void> | undefined;
  const runStep = async (step: () => Promise<void> | void) => {
    try {
      await step();
    } catch (error) {
      onStepError(error);
    }
  };
  return {
    defer(step) {
      if (closing) void runStep(step);
      else steps.push(step);
    },
    close() {
      closing ??= (async () => {
        for (let step = steps.pop(); step; step = steps.pop()) await runStep(step);
      })();
      return closing;
    },
  };
}

/** A number flag within bounds, e.g. `--duration 10`. */
export function numberFlag(name: string, raw: string | undefined, fallback: number, bounds: { min: number; max: number; integer?: boolean }): number {
  if (raw === undefined) return fallback;
  const value = Number(raw.trim());
  const kind = bounds.integer ? 'a whole number' : 'a number';
  if (raw.trim() === '' || !Number.isFinite(value) || (bounds.integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${kind} (got "${raw}")`);
  }
  if (value < bounds.min || value > bounds.max) {
    throw new UsageError(`--${name} must be between ${bounds.min} and ${bounds.max} (got ${raw})`);
  }
  return value;
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** `promise`, or a rejection with `message()` once `ms` have passed (or the signal's reason when it aborts). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string, signal?: AbortSignal): Promise<T> {
  const timer = new AbortController();
  const timeout = sleep(ms, signal ? AbortSignal.any([signal, timer.signal]) : timer.signal).then(() => {
    throw new Error(message());
  });
  timeout.catch(() => {}); // settled by the race below, or abandoned when `promise` wins
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    timer.abort();
  }
}

/**
 * Reads `--name value` flags (all strings; unknown flags are a UsageError) and returns a
 * lookup that gives the raw text of one, or undefined when it was not given.
 */
export function readFlags(args: readonly string[], names: readonly string[]): (name: string) => string | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  return (name) => (typeof values[name] === 'string' ? values[name] : undefined);
}
