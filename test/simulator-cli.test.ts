// The standalone simulator (`npm run simulator`): it makes and prints its own token (or takes
// SIM_API_TOKEN), and with SIM_DATA_DIR its predictions survive even a SIGKILL.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { until } from './support/until.ts';

const cli = path.join(import.meta.dirname, '..', 'jobs', 'simulator', 'cli.ts');
const children = new Set<ChildProcess>();

interface RunningCli {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  /** The line about the token, e.g. "(generated; …)" or "(SIM_API_TOKEN)". */
  readonly tokenLine: string;
}

/** Starts the CLI on a free port and reads its banner. */
function startCli(env: Record<string, string>): Promise<RunningCli> {
  const child = spawn(process.execPath, [cli], { env: { ...process.env, SIM_PORT: '0', SIM_LATENCY_MS: '2000', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let banner = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      banner += chunk.toString();
      const url = /listening on (http:\/\/\S+)/.exec(banner)?.[1];
      const tokenLine = /api token:\s+(\S+) (.*)$/m.exec(banner);
      if (url !== undefined && tokenLine?.[1] !== undefined && banner.includes('admin:')) resolve({ child, url, token: tokenLine[1], tokenLine: tokenLine[2] ?? '' });
    });
    child.once('exit', (code) => reject(new Error(`simulator exited (${code}) before it was ready: ${banner}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

after(() => {
  for (const child of children) child.kill('SIGKILL');
});

describe('the standalone simulator', () => {
  test('without SIM_API_TOKEN it generates a token, prints it, and requires it', async () => {
    const sim = await startCli({});
    try {
      assert.match(sim.token, /^r8_[A-Za-z0-9]{37}$/);
      assert.match(sim.tokenLine, /generated/);
      assert.equal((await fetch(`${sim.url}/v1/predictions`)).status, 401);
      assert.equal((await fetch(`${sim.url}/v1/predictions`, { headers: { authorization: `Bearer ${sim.token}` } })).status, 200);
    } finally {
      sim.child.kill('SIGTERM');
      await exited(sim.child);
    }
  });

  test('with SIM_API_TOKEN it takes that one', async () => {
    const sim = await startCli({ SIM_API_TOKEN: 'r8_chosen_by_the_operator' });
    try {
      assert.equal(sim.token, 'r8_chosen_by_the_operator');
      assert.match(sim.tokenLine, /SIM_API_TOKEN/);
      assert.equal((await fetch(`${sim.url}/v1/account`, { headers: { authorization: 'Bearer r8_chosen_by_the_operator' } })).status, 200);
    } finally {
      sim.child.kill('SIGTERM');
      await exited(sim.child);
    }
  });

  test('SIM_MAX_INPUT_IMAGE_BYTES caps the input images its models fetch', async () => {
    const sim = await startCli({ SIM_MAX_INPUT_IMAGE_BYTES: '1000', SIM_LATENCY_MS: '50' });
    try {
      const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c84', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png().toBuffer();
      assert.ok(png.length > 1000, 'the input is over the cap');
      const headers = { authorization: `Bearer ${sim.token}`, 'content-type': 'application/json' };
      const created = await fetch(`${sim.url}/v1/models/bria/remove-background/predictions`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ input: { image: `data:image/png;base64,${png.toString('base64')}` } }),
      });
      assert.equal(created.status, 201);
      const { id } = (await created.json()) as { id: string };
      const final = await until(async () => {
        const prediction = (await (await fetch(`${sim.url}/v1/predictions/${id}`, { headers })).json()) as { status: string; error: string | null };
        return ['succeeded', 'failed', 'canceled'].includes(prediction.status) ? prediction : undefined;
      });
      assert.equal(final.status, 'failed');
      assert.match(final.error ?? '', /larger than 1000 bytes/);
    } finally {
      sim.child.kill('SIGTERM');
      await exited(sim.child);
    }
  });

  test('with SIM_DATA_DIR a prediction answered 201 survives a SIGKILL right after, and so does the token', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-sim-cli-'));
    try {
      const first = await startCli({ SIM_DATA_DIR: dataDir });
      const res = await fetch(`${first.url}/v1/models/black-forest-labs/flux-schnell/predictions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${first.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: { prompt: 'survives a crash' } }),
      });
      assert.equal(res.status, 201);
      const { id } = (await res.json()) as { id: string };
      first.child.kill('SIGKILL');
      await exited(first.child);

      // Its LOCK is left behind by a dead process: the next one takes the folder over.
      const second = await startCli({ SIM_DATA_DIR: dataDir });
      try {
        assert.equal(second.token, first.token);
        assert.match(second.tokenLine, /kept in/);
        const read = await fetch(`${second.url}/v1/predictions/${id}`, { headers: { authorization: `Bearer ${second.token}` } });
        assert.equal(read.status, 200);
        assert.equal(((await read.json()) as { id: string }).id, id);
      } finally {
        second.child.kill('SIGTERM');
        await exited(second.child);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
