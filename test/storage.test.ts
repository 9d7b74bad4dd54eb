// Assets beyond one disk: with KILN_STORAGE=s3, an API and a worker that share nothing but the
// database and the bucket (each its own data folder) deliver every asset through the API; and
// with local storage, processes of one database that do not share a folder are told so.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger, type Logger } from '../jobs/logger.ts';
import { startTestBucket, type TestBucket } from './support/s3.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

/** Every file under a folder, however deep (an absent folder has none). */
async function filesUnder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

describe('assets in an S3-compatible bucket, API and worker apart', () => {
  let bucket: TestBucket;
  let api: TestKiln;
  let worker: TestKiln;
  before(async () => {
    bucket = await startTestBucket({ prefix: 'kiln/' });
    api = await startKiln({ env: { ...bucket.env, KILN_ROLE: 'api' } });
    worker = await startKiln({ databaseUrl: api.databaseUrl, env: { ...bucket.env, KILN_ROLE: 'worker' } });
  });
  after(async () => {
    await worker?.stop();
    await api?.stop();
    await bucket?.stop();
  });

  it('stores a generation\'s assets in the bucket and serves them byte for byte through the API', async () => {
    const { id } = await api.client.generate({ prompt: 'a kiln in the rain', platforms: ['instagram-post', 'thumbnail'], formats: ['webp', 'png'], seed: 7 });
    const done = await api.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.assets.length, 5);

    const inBucket = await bucket.keys();
    for (const asset of done.assets) {
      const key = path.basename(new URL(asset.url).pathname);
      assert.ok(inBucket.includes(`kiln/${key}`), `${key} is in the bucket`);
      const response = await fetch(asset.url);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('cache-control') ?? '', /immutable/);
      const etag = response.headers.get('etag');
      assert.equal(etag, `"${asset.contentHash}"`);
      const body = Buffer.from(await response.arrayBuffer());
      assert.equal(body.length, asset.bytes);
      assert.equal(createHash('sha256').update(body).digest('hex'), asset.contentHash, 'the bytes are the ones stored');
      const revalidated = await fetch(asset.url, { headers: { 'If-None-Match': etag ?? '' } });
      assert.equal(revalidated.status, 304);
      const head = await fetch(asset.url, { method: 'HEAD' });
      assert.equal(head.headers.get('content-length'), String(asset.bytes));
    }
    const missing = await fetch(new URL(`/assets/${'0'.repeat(64)}.png`, api.url));
    assert.equal(missing.status, 404);
  });

  it('serves a cache hit from the original in the bucket', async () => {
    const request = { prompt: 'the same lighthouse twice', platforms: ['x-post' as const], formats: ['jpeg' as const], seed: 11 };
    const first = await api.client.waitFor((await api.client.generate(request)).id, { timeoutMs: 60_000 });
    assert.equal(first.state, 'succeeded');
    const second = await api.client.waitFor((await api.client.generate({ ...request, platforms: ['banner'] })).id, { timeoutMs: 60_000 });
    assert.equal(second.state, 'succeeded', JSON.stringify(second.error));
    assert.equal(second.servedFrom?.kind, 'cache');
    const banner = second.assets.find((asset) => asset.platform === 'banner');
    assert.ok(banner);
    assert.equal((await fetch(banner.url)).status, 200);
  });

  it('never writes an asset to either process\'s data folder', async () => {
    assert.deepEqual(await filesUnder(path.join(api.dataDir, 'assets')), []);
    assert.deepEqual(await filesUnder(path.join(worker.dataDir, 'assets')), []);
  });
});

describe('local storage with the roles split', () => {
  const warningsOf = () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => void warnings.push(message) };
    return { warnings, logger };
  };

  it('warns a process whose asset folder is not the one the others of its database use', async () => {
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    try {
      const apart = warningsOf();
      const worker = await startKiln({ databaseUrl: api.databaseUrl, logger: apart.logger, env: { KILN_ROLE: 'worker' } });
      await worker.stop();
      assert.ok(apart.warnings.some((line) => /must share one asset folder/.test(line) && line.includes(path.join(worker.dataDir, 'assets'))), apart.warnings.join('\n'));

      const together = warningsOf();
      const sharing = await startKiln({ databaseUrl: api.databaseUrl, dataDir: api.dataDir, logger: together.logger, env: { KILN_ROLE: 'worker' } });
      await sharing.stop();
      assert.deepEqual(together.warnings.filter((line) => /asset folder|assets are kept/.test(line)), []);
    } finally {
      await api.stop();
    }
  });
});
