// A Kiln worker in its own process (`kiln serve` with KILN_ROLE=worker), as deployed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const cli = path.join(import.meta.dirname, '..', '..', 'server', 'cli.ts');

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Resolves once the worker is taking work. */
  readonly ready: Promise<void>;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: no shutdown at all, as in a crash. */
  crash(): Promise<number | null>;
}

export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-worker-'));
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, KILN_LOG_LEVEL: 'warn', KILN_DATA_DIR: dataDir, ...env, KILN_ROLE: 'worker' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => rm(dataDir, { recursive: true, force: true }));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('Kiln is running') && resolve());
    child.once('exit', (code, signal) => reject(new Error(`worker exited before it was ready (${signal ?? code})`)));
  });
  ready.catch(() => {}); // reported to whoever awaits it
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return { child, ready, stop: () => end('SIGTERM'), crash: () => end('SIGKILL') };
}
