// The first-run experience: `kiln serve` with nothing configured starts an embedded
// PostgreSQL, the simulator, the worker and the API, prints a development key once, and
// stops cleanly on SIGTERM. The `keys` command creates and revokes keys.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TRPCClientError, createKilnClient } from '../client-sdk/index.ts';
import { freePort } from './support/ports.ts';

const cli = path.join(import.meta.dirname, '..', 'server', 'cli.ts');

function environment(dataDir: string, pgPort: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KILN_DATA_DIR: dataDir, KILN_EMBEDDED_PG_PORT: String(pgPort), PORT: '0', KILN_SIMULATOR_LATENCY_MS: '50-150' };
  delete env.DATABASE_URL; // the point: nothing configured
  delete env.REPLICATE_API_TOKEN;
  return env;
}

/** Starts `kiln serve` and resolves with its stdout once the banner is complete. */
function serve(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; banner: string }> {
  const child = spawn(process.execPath, [cli, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in time:\n${output}\n${errors}`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/API key/.test(output) && output.trimEnd().endsWith(')') || /API keys\s+create one/.test(output)) {
        clearTimeout(timer);
        resolve({ child, banner: output });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited early (${code}):\n${output}\n${errors}`));
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

function runCli(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', timeout: 60_000 });
}

describe('kiln serve on a fresh machine', () => {
  it('starts everything, prints a development key once, serves generations, and stops on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-'));
    const env = environment(dataDir, await freePort());
    try {
      const { child, banner } = await serve(env);
      const url = /API\s+(http:\/\/\S+)\/trpc/.exec(banner)?.[1];
      const apiKey = /API key\s+(kiln_sk_\S+)/.exec(banner)?.[1];
      assert.ok(url, banner);
      assert.ok(apiKey, banner);
      assert.match(banner, /embedded PostgreSQL/);
      // The Studio link signs in with the development key, carried in the fragment.
      assert.ok(banner.includes(`Studio     ${url}/#key=${apiKey}`), banner);
      assert.match(await (await fetch(`${url}/`)).text(), /<title>Kiln Studio<\/title>/);
      assert.match(banner, /simulator/);

      const client = createKilnClient({ url, apiKey });
      const { id } = await client.generate({ prompt: 'first run', platforms: ['thumbnail'] });
      assert.equal((await client.waitFor(id, { timeoutMs: 60_000 })).state, 'succeeded');

      // keys: create for a new tenant, use it, revoke it.
      const created = runCli(['keys', 'create', '--tenant', 'acme', '--name', 'ci'], env);
      assert.equal(created.status, 0, created.stderr);
      const acmeKey = /(kiln_sk_\S+)/.exec(created.stdout)?.[1];
      assert.ok(acmeKey, created.stdout);
      const acme = createKilnClient({ url, apiKey: acmeKey });
      assert.equal((await acme.list()).items.length, 0, 'a new tenant sees none of the default tenant\'s work');
      const listed = runCli(['keys', 'list', '--tenant', 'acme'], env);
      const keyId = /^([0-9a-f-]{36})/m.exec(listed.stdout)?.[1];
      assert.ok(keyId, listed.stdout);
      assert.equal(runCli(['keys', 'revoke', keyId], env).status, 0);
      const bad = runCli(['keys', 'create'], env);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /needs --tenant/);

      assert.equal(await stop(child), 0, 'SIGTERM stops it cleanly');

      // Second start: same data, no new key printed, the first key still works.
      const again = await serve(env);
      assert.doesNotMatch(again.banner, /kiln_sk_/);
      const second = createKilnClient({ url: /API\s+(http:\/\/\S+)\/trpc/.exec(again.banner)?.[1] ?? '', apiKey });
      assert.equal((await second.status({ id })).state, 'succeeded', 'data survived the restart');
      const revoked = createKilnClient({ url: /API\s+(http:\/\/\S+)\/trpc/.exec(again.banner)?.[1] ?? '', apiKey: acmeKey });
      await assert.rejects(revoked.list(), (error) => error instanceof TRPCClientError && error.data?.code === 'UNAUTHORIZED');
      assert.equal(await stop(again.child), 0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
