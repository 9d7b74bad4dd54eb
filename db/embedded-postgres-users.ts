// Who uses an embedded PostgreSQL: one file per user in a folder beside the cluster, so several
// Kiln processes on one data folder (KILN_ROLE=api and KILN_ROLE=worker) share its server and
// whoever stops last stops it. A user that died without saying so (kill -9) is pruned by the
// next one who looks. Starting and stopping the server happen under a lock, so a process
// deciding "nobody else is left, stop it" cannot race one that is just arriving.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface UserRegistry {
  /** Runs `work` while holding the folder's lock (waits for it; a lock left by a dead process is broken). */
  withLock<T>(work: () => Promise<T>): Promise<T>;
  /** Adds this process as a user; call under the lock. Resolves with its id. */
  register(): Promise<string>;
  /** Removes a user; call under the lock. */
  unregister(id: string): Promise<void>;
  /** Users whose process is still alive, after removing those that are not. */
  liveUsers(): Promise<string[]>;
}

/** A lock is waited for this long at most: starting or stopping PostgreSQL takes seconds, not minutes. */
const LOCK_WAIT_MS = 120_000;
const LOCK_POLL_MS = 50;
/** A lock folder without its owner's pid yet is that young at most (mkdir, then write). */
const LOCK_PID_GRACE_MS = 5_000;

export function createUserRegistry(folder: string): UserRegistry {
  const usersDir = path.join(folder, 'postgres-users');
  const lockDir = path.join(folder, 'postgres-users.lock');

  async function acquireLock(): Promise<void> {
    const giveUpAt = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await mkdir(lockDir); // atomic: exactly one process creates it
        await writeFile(path.join(lockDir, 'pid'), identityOf(process.pid, await startTimeOf(process.pid)));
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const stale = await staleLockOwner();
      if (stale !== undefined) {
        // Moved aside and checked before it is removed: another process that found the same
        // stale lock may have broken it already and taken a fresh one, which must be put back.
        const aside = `${lockDir}.stale-${randomBytes(4).toString('hex')}`;
        if (await rename(lockDir, aside).then(() => true, () => false)) {
          const owner = await readFile(path.join(aside, 'pid'), 'utf8').catch(() => '');
          if (owner === stale) await rm(aside, { recursive: true, force: true });
          else await rename(aside, lockDir).catch(() => rm(aside, { recursive: true, force: true }));
        }
        continue;
      }
      if (Date.now() > giveUpAt) throw new Error(`waited ${LOCK_WAIT_MS / 1000} s for ${lockDir}; remove it if no Kiln process is starting or stopping PostgreSQL`);
      await sleep(LOCK_POLL_MS);
    }
  }

  /** The dead owner's identity ('' for a lock that never got one), or undefined while the lock is held. */
  async function staleLockOwner(): Promise<string | undefined> {
    const owner = await readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => undefined);
    if (owner === undefined) {
      const created = await stat(lockDir).then((info) => info.mtimeMs, () => undefined);
      return created !== undefined && Date.now() - created > LOCK_PID_GRACE_MS ? '' : undefined;
    }
    return (await isAlive(owner)) ? undefined : owner;
  }

  return {
    async withLock(work) {
      await mkdir(folder, { recursive: true });
      await acquireLock();
      try {
        return await work();
      } finally {
        await rm(lockDir, { recursive: true, force: true });
      }
    },
    async register() {
      await mkdir(usersDir, { recursive: true });
      // Several users may live in one process (tests start apps side by side): each has its own file.
      const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
      await writeFile(path.join(usersDir, id), identityOf(process.pid, await startTimeOf(process.pid)));
      return id;
    },
    async unregister(id) {
      await rm(path.join(usersDir, id), { force: true });
    },
    async liveUsers() {
      const names = await readdir(usersDir).catch(() => [] as string[]);
      const live: string[] = [];
      for (const name of names) {
        const identity = await readFile(path.join(usersDir, name), 'utf8').catch(() => undefined);
        if (identity !== undefined && (await isAlive(identity))) live.push(name);
        else await rm(path.join(usersDir, name), { force: true });
      }
      return live;
    },
  };
}

/**
 * "pid start-time": the start time (Linux: clock ticks since boot, from /proc) tells a live user
 * from an unrelated process that was given a dead user's pid later.
 */
function identityOf(pid: number, startTime: string | undefined): string {
  return startTime === undefined ? String(pid) : `${pid} ${startTime}`;
}

async function isAlive(identity: string): Promise<boolean> {
  const [pidText, recordedStart] = identity.trim().split(' ');
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (recordedStart === undefined) return true;
  const start = await startTimeOf(pid);
  return start === undefined || start === recordedStart;
}

/** Field 22 of /proc/<pid>/stat; undefined where there is no /proc. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // The command name (field 2) is in parentheses and may contain spaces: count from after it.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // field 22 overall: fields 3.. start at index 0
}
