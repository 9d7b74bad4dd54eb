// Kiln in its own process (`kiln serve`), as deployed: a worker (KILN_ROLE=worker), or any role.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const cli = path.join(import.meta.dirname, '..', '..', 'server', 'cli.ts');

export interface KilnProcess {
  readonly child: ChildProcess;
  /** Resolves once Kiln is serving (the API listening, the worker taking work). */
  readonly ready: Promise<void>;
  /** Where the API listens, once ready (undefined for a worker). */
  url(): string | undefined;
  /** Where /health, /ready and /metrics are served, once ready (a worker's own port). */
  opsUrl(): string | undefined;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: no shutdown at all, as in a crash. */
  crash(): Promise<number | null>;
  /** What it wrote to stderr so far, with `stderr: 'pipe'`. */
  logs(): string;
}

/** A worker is a KilnProcess; the name stays for the tests that start workers. */
export type WorkerProcess = KilnProcess;

export interface KilnProcessOptions {
  role: 'api' | 'worker' | 'all';
  env: Record<string, string>;
  /** Shared with other processes (the caller removes it); by default a folder of its own, removed on exit. */
  dataDir?: string;
  /** Node's own flags before the script (e.g. `--import` of an operator's tracing setup). */
  nodeOptions?: string[];
  /** Its log lines (stderr): shown with the test's output, or kept for the test to read (`logs()`). */
  stderr?: 'inherit' | 'pipe';
}

export async function startKilnProcess(options: KilnProcessOptions): Promise<KilnProcess> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'kiln-process-')));
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), cli, 'serve'], {
    env: { ...process.env, KILN_LOG_LEVEL: 'warn', PORT: '0', KILN_WORKER_PORT: '0', KILN_DATA_DIR: dataDir, ...options.env, KILN_ROLE: options.role },
    stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'],
  });
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (!options.dataDir) void exited.then(() => rm(dataDir, { recursive: true, force: true }));
  let output = '';
  let url: string | undefined;
  let opsUrl: string | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      url ??= /API\s+(http:\/\/\S+)\/trpc/.exec(output)?.[1];
      opsUrl ??= /Metrics\s+(http:\/\/\S+)\/metrics/.exec(output)?.[1];
      if (output.includes('Kiln is running')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`kiln (${options.role}) exited before it was ready (${signal ?? code})`)));
  });
  ready.catch(() => {}); // reported to whoever awaits it
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return { child, ready, url: () => url, opsUrl: () => opsUrl, stop: () => end('SIGTERM'), crash: () => end('SIGKILL'), logs: () => errors };
}

export function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  return startKilnProcess({ role: 'worker', env });
}
