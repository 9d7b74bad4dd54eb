// Child processes under test: spawn, wait until they answer, stop (politely, then firmly),
// and read their resident memory.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { sleep } from './harness.ts';

export { freePort } from '../support/ports.ts';

export interface Child {
  name: string;
  pid: number | undefined;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<string>;
  /** How it exited, or undefined while it runs. */
  exitStatus(): string | undefined;
  /** The last lines it wrote, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Resolves once a line of its output contains `text`; fails if it exits first, on timeout or abort. */
  waitForOutput(text: string, options: { timeoutMs: number; signal: AbortSignal }): Promise<void>;
}

const TAIL_LINES = 40;

export function spawnChild(name: string, args: readonly string[], options: { cwd: string; env: Record<string, string> }): Child {
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    // Only what we pass: the child must not pick up the caller's DATABASE_URL, PORT, etc.
    env: { ...pick(process.env, ['PATH', 'HOME', 'TMPDIR', 'LANG']), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Output is drained (a full pipe would block the child) and only the tail kept.
  const lines: string[] = [];
  const watchers = new Set<{ text: string; found(): void }>();
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim()) lines.push(line);
      for (const watcher of watchers) if (line.includes(watcher.text)) watcher.found();
    }
    if (lines.length > TAIL_LINES) lines.splice(0, lines.length - TAIL_LINES);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code ?? '?'}`));
    child.once('error', (error) => resolve(`spawn error: ${error.message}`));
  });
  let exitStatus: string | undefined;
  void exited.then((how) => (exitStatus = how));
  return {
    name,
    pid: child.pid,
    exited,
    exitStatus: () => exitStatus,
    tail: () => lines.join('\n'),
    async stop(graceMs = 10_000) {
      if (exitStatus !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    waitForOutput(text, { timeoutMs, signal }) {
      return new Promise<void>((resolve, reject) => {
        const finish = (error?: unknown) => {
          watchers.delete(watcher);
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          if (error === undefined) resolve();
          else reject(error);
        };
        const watcher = { text, found: () => finish() };
        const onAbort = () => finish(signal.reason);
        const timer = setTimeout(() => finish(new Error(`${name} did not print "${text}" within ${timeoutMs / 1000} s:\n${lines.join('\n')}`)), timeoutMs);
        if (signal.aborted) return finish(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        watchers.add(watcher);
        void exited.then((how) => finish(new Error(`${name} exited (${how}) before it printed "${text}":\n${lines.join('\n')}`)));
      });
    },
  };
}

/** Resident memory of a process in KB (VmRSS in /proc/<pid>/status); undefined where /proc can't tell. */
export function residentKb(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

function pick(env: NodeJS.ProcessEnv, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/** GET `url` until it answers 200; fails early if the child exits or the signal aborts. */
export async function waitUntilHealthy(child: Child, url: string, options: { timeoutMs: number; signal: AbortSignal }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastProblem = 'no answer yet';
  while (Date.now() < deadline) {
    const exit = child.exitStatus();
    if (exit !== undefined) throw new Error(`${child.name} exited (${exit}) before it was healthy:\n${child.tail()}`);
    const status = await getStatus(url).catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
    if (status === 200) return;
    lastProblem = typeof status === 'number' ? `HTTP ${status}` : status;
    await sleep(100, options.signal);
  }
  throw new Error(`${child.name} was not healthy at ${url} within ${options.timeoutMs / 1000} s (${lastProblem}):\n${child.tail()}`);
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: 2_000, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}
