// End to end through the client-sdk: generate → worker → simulator → sharp → assets over HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { PLATFORM_PRESETS } from '../jobs/render/presets.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

describe('generate', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('answers at once with an id, then succeeds with one asset per platform × format plus the original', async () => {
    const accepted = await kiln.client.generate({
      prompt: 'a red fox in a snowy forest',
      platforms: ['instagram-post', 'x-post', 'banner'],
      formats: ['webp', 'png'],
      seed: 42,
    });
    assert.equal(accepted.status, 'queued');
    assert.match(accepted.id, /^[0-9a-f-]{36}$/);

    const done = await kiln.client.waitFor(accepted.id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.ok(done.predictionId, 'the provider prediction id is recorded');
    assert.ok(done.startedAt && done.finishedAt);
    assert.equal(done.error, null);

    const variants = done.assets.filter((asset) => asset.kind === 'variant');
    assert.equal(variants.length, 6);
    for (const platform of ['instagram-post', 'x-post', 'banner'] as const) {
      for (const format of ['webp', 'png']) {
        const asset = variants.find((candidate) => candidate.platform === platform && candidate.format === format);
        assert.ok(asset, `${platform} ${format} exists`);
        assert.equal(asset.width, PLATFORM_PRESETS[platform].width);
        assert.equal(asset.height, PLATFORM_PRESETS[platform].height);
      }
    }
    const original = done.assets.find((asset) => asset.kind === 'original');
    assert.ok(original, 'the original is kept');
    assert.equal(original.width, 1024);

    const stages = done.events.map((event) => event.stage);
    for (const stage of ['queued', 'started', 'provider.created', 'downloading', 'rendering', 'stored', 'succeeded']) {
      assert.ok(stages.includes(stage), `stage ${stage} recorded (saw ${stages.join(', ')})`);
    }
  });

  it('serves every asset with its content type, size, ETag and an immutable cache policy', async () => {
    const { id } = await kiln.client.generate({ prompt: 'lighthouse at dusk', platforms: ['youtube-thumbnail', 'thumbnail'], formats: ['avif', 'jpeg'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded');
    const expectedType = { avif: 'image/avif', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as const;
    for (const asset of done.assets) {
      const response = await fetch(asset.url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), expectedType[asset.format as keyof typeof expectedType]);
      assert.match(response.headers.get('cache-control') ?? '', /immutable/);
      assert.match(response.headers.get('cache-control') ?? '', /max-age=31536000/);
      const etag = response.headers.get('etag');
      assert.equal(etag, `"${asset.contentHash}"`);
      const bytes = Buffer.from(await response.arrayBuffer());
      assert.equal(bytes.length, asset.bytes);
      const metadata = await sharp(bytes).metadata();
      assert.equal(metadata.width, asset.width);
      assert.equal(metadata.height, asset.height);
      assert.equal(metadata.format === 'heif' ? 'avif' : metadata.format, asset.format);

      const revalidated = await fetch(asset.url, { headers: { 'If-None-Match': etag ?? '' } });
      assert.equal(revalidated.status, 304);
    }
    const missing = await fetch(`${kiln.url}/assets/${'0'.repeat(64)}.png`);
    assert.equal(missing.status, 404);
    const traversal = await fetch(`${kiln.url}/assets/..%2F..%2Fetc%2Fpasswd`);
    assert.equal(traversal.status, 404);
  });

  it('is deterministic per prompt and seed, and crops by attention when asked', async () => {
    const input = { prompt: 'geometric poster', platforms: ['instagram-story' as const], formats: ['png' as const], seed: 7 };
    const [a, b, c] = await Promise.all([
      kiln.client.generate(input),
      kiln.client.generate(input),
      kiln.client.generate({ ...input, crop: 'attention' }),
    ]);
    const [doneA, doneB, doneC] = await Promise.all([a, b, c].map(({ id }) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
    const hash = (done: typeof doneA) => done?.assets.find((asset) => asset.kind === 'variant')?.contentHash;
    assert.equal(hash(doneA), hash(doneB));
    assert.notEqual(hash(doneA), hash(doneC));
  });

  it('lists the caller\'s generations newest first, with filters and cursor pagination', async () => {
    const other = await kiln.newTenant();
    const ids: string[] = [];
    for (let index = 0; index < 5; index += 1) {
      ids.push((await other.client.generate({ prompt: `list item ${index}` })).id);
    }
    const firstPage = await other.client.list({ limit: 2 });
    assert.deepEqual(firstPage.items.map((item) => item.id), [ids[4], ids[3]]);
    assert.ok(firstPage.nextCursor);
    const secondPage = await other.client.list({ limit: 2, cursor: firstPage.nextCursor });
    assert.deepEqual(secondPage.items.map((item) => item.id), [ids[2], ids[1]]);
    const lastPage = await other.client.list({ limit: 2, cursor: secondPage.nextCursor ?? undefined });
    assert.deepEqual(lastPage.items.map((item) => item.id), [ids[0]]);
    assert.equal(lastPage.nextCursor, null);

    await Promise.all(ids.map((id) => other.client.waitFor(id, { timeoutMs: 60_000 })));
    const succeeded = await other.client.list({ states: ['succeeded'], limit: 100 });
    assert.equal(succeeded.items.length, 5);
    const failed = await other.client.list({ states: ['failed'] });
    assert.equal(failed.items.length, 0);
  });

  it('returns the first generation again for a repeated idempotency key', async () => {
    const first = await kiln.client.generate({ prompt: 'idempotent', idempotencyKey: 'order-1234' });
    const again = await kiln.client.generate({ prompt: 'idempotent', idempotencyKey: 'order-1234' });
    assert.equal(again.id, first.id);
    assert.equal(again.deduplicated, true);
    assert.equal(first.deduplicated, false);
  });
});
