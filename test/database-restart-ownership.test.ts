// Several Kiln processes on one data folder share its embedded PostgreSQL, and whoever stops
// last stops it — whichever process started it, and whichever took it over after a crash.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createUserRegistry } from '../db/embedded-postgres-users.ts';
import { freePort } from './support/ports.ts';
import { startKilnProcess, type KilnProcess } from './support/worker-process.ts';

/** Whether anything accepts connections on the port (the embedded PostgreSQL, here). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

async function ready(api: KilnProcess): Promise<number> {
  return (await fetch(`${api.url()}/ready`)).status;
}

describe('embedded PostgreSQL shared by several processes', () => {
  it('keeps running until the last process using it stops, whoever started or took it over', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-shared-pg-'));
    const pgPort = await freePort();
    // No DATABASE_URL: each process finds (or starts) the embedded PostgreSQL of the shared folder.
    const env = { DATABASE_URL: '', KILN_EMBEDDED_PG_PORT: String(pgPort), KILN_SHUTDOWN_GRACE_MS: '1000' };
    const running: KilnProcess[] = [];
    const start = async (role: 'api' | 'worker') => {
      const started = await startKilnProcess({ role, env, dataDir });
      running.push(started);
      await started.ready;
      return started;
    };
    try {
      // The API starts the server; a worker joins it.
      const firstApi = await start('api');
      const firstWorker = await start('worker');
      // The API dies without a word; the worker carries on, and a new worker starts meanwhile
      // (it finds a server whose starter is gone: the case that used to take the server over).
      assert.ok((await firstApi.crash()) !== 0);
      const worker = await start('worker');
      const api = await start('api');
      assert.equal(await ready(api), 200);

      // Both workers stop: the API still uses the server, so it keeps running.
      assert.equal(await firstWorker.stop(), 0);
      assert.equal(await worker.stop(), 0);
      assert.equal(await listening(pgPort), true, 'PostgreSQL still runs for the API');
      assert.equal(await ready(api), 200, 'and the API still reaches it');

      // The other order: a worker joins, the API stops first, the worker stops last and stops it.
      const lastWorker = await start('worker');
      assert.equal(await api.stop(), 0);
      assert.equal(await listening(pgPort), true, 'PostgreSQL still runs for the worker');
      assert.equal(await lastWorker.stop(), 0);
      assert.equal(await listening(pgPort), false, 'the last one out stopped PostgreSQL');
      assert.deepEqual(await readdir(path.join(dataDir, 'postgres-users')), [], 'no user left behind (the crashed one was pruned)');
    } finally {
      await Promise.all(running.map((process) => process.stop()));
      // Whatever a failed run left running goes with a last process that stops at once.
      if (await listening(pgPort)) {
        const cleanup = await startKilnProcess({ role: 'worker', env, dataDir });
        await cleanup.ready.catch(() => {});
        await cleanup.stop();
      }
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the registry of an embedded PostgreSQL\'s users', () => {
  it('prunes users whose process is gone, or whose pid now names another process', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'kiln-users-'));
    try {
      const users = createUserRegistry(folder);
      const [me, alsoMe] = await users.withLock(async () => [await users.register(), await users.register()]);
      assert.deepEqual((await users.liveUsers()).sort(), [me, alsoMe].sort(), 'two users in one process are two users');
      // A user that died, and one whose pid was given to a process started at another time.
      await writeFile(path.join(folder, 'postgres-users', 'gone'), String(await deadPid()));
      await writeFile(path.join(folder, 'postgres-users', 'reused'), `${process.pid} 1`);
      assert.deepEqual((await users.liveUsers()).sort(), [me, alsoMe].sort());
      assert.deepEqual((await readdir(path.join(folder, 'postgres-users'))).sort(), [me, alsoMe].sort(), 'pruned from the folder');
      await users.withLock(() => users.unregister(me!));
      assert.deepEqual(await users.liveUsers(), [alsoMe]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('breaks a lock left by a process that died holding it', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'kiln-users-'));
    try {
      await mkdir(path.join(folder, 'postgres-users.lock'));
      await writeFile(path.join(folder, 'postgres-users.lock', 'pid'), String(await deadPid()));
      const users = createUserRegistry(folder);
      assert.equal(await users.withLock(async () => 'got it'), 'got it');
      assert.deepEqual(await readdir(folder), [], 'and released it');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
