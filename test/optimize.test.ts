// The product-photo optimiser: one call turns a store's photo into catalogue images — upscaled
// when its short edge is below the target, its background removed, framed on white or kept
// transparent, padded to each platform's shape. Each paid step is a generation of its own, so a
// worker that dies between two steps never pays for the first again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { GenerationStatus } from '../client-sdk/index.ts';
import { updateTenant } from '../db/tenants.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { startApiBesideProvider } from './support/api-beside-provider.ts';
import { until } from './support/until.ts';
import { startWorkerProcess } from './support/worker-process.ts';

/** A product photo: a dark red box in the middle of a plain light-grey backdrop, as a JPEG (no alpha). */
async function opaquePhoto(width: number, height: number): Promise<Buffer> {
  const box = await sharp({ create: { width: Math.round(width / 2), height: Math.round(height / 2), channels: 3, background: '#8a1c1c' } }).png().toBuffer();
  return sharp({ create: { width, height, channels: 3, background: '#dddddd' } })
    .composite([{ input: box, gravity: 'centre' }])
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** A cut-out already: a blue disc on transparency, as a PNG. */
async function transparentPhoto(size: number): Promise<Buffer> {
  const disc = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><circle cx="${size / 2}" cy="${size / 2}" r="${size / 3}" fill="#1c4f8a"/></svg>`);
  return sharp(disc).png().toBuffer();
}

async function download(url: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(url)).arrayBuffer());
}

/** The RGBA of one pixel. */
async function pixelAt(image: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(image).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * 4;
  return [...data.subarray(at, at + 4)];
}

const variant = (status: GenerationStatus, platform: string, format: string) => status.assets.find((asset) => asset.kind === 'variant' && asset.platform === platform && asset.format === format);

describe('the product-photo optimiser', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0' } });
    await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'standard' });
  });
  after(() => kiln.stop());

  it('upscales a small opaque photo, removes its backdrop and frames it on white, padded to each shape', async () => {
    const photo = await opaquePhoto(300, 200);
    const source = await kiln.client.sources.upload(photo, { filename: 'box.jpg' });
    const { id } = await kiln.client.generate({ operation: 'optimize', sourceId: source.id, targetShortEdge: 512, platforms: ['instagram-post', 'x-post'], formats: ['webp', 'jpeg'], subject: 'store-1' });
    const done = await kiln.client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.operation, 'optimize');
    assert.equal(done.predictionId, null, 'its steps made the predictions');

    // Two paid steps, in order: the upscale (200 px short edge, ×4 to pass 512), the background removal.
    assert.deepEqual(done.parts.map((part) => [part.operation, part.state]), [['upscale', 'succeeded'], ['remove-background', 'succeeded']]);
    const [upscaled, cutOut] = await Promise.all(done.parts.map((part) => kiln.client.status({ id: part.id })));
    assert.deepEqual([upscaled!.assets[0]?.width, upscaled!.assets[0]?.height], [1200, 800]);
    assert.deepEqual(cutOut!.from, { generationId: upscaled!.id, output: 0 });
    assert.equal((await sharp(await download(cutOut!.assets[0]!.url)).metadata()).hasAlpha, true);

    // The catalogue image: on white, opaque, the product framed with a margin; padded, not cropped.
    const framed = await download(done.assets.find((asset) => asset.kind === 'original')!.url);
    const meta = await sharp(framed).metadata();
    assert.equal(meta.hasAlpha, false, 'laid on white');
    assert.deepEqual(await pixelAt(framed, 2, 2), [255, 255, 255, 255]);
    const square = variant(done, 'instagram-post', 'webp')!;
    assert.deepEqual([square.width, square.height], [1080, 1080]);
    const squarePixels = await download(square.url);
    assert.deepEqual((await pixelAt(squarePixels, 540, 30)).map((channel) => Math.round(channel / 16)), [16, 16, 16, 16], 'padded above and below in white');
    const centre = await pixelAt(squarePixels, 540, 540);
    assert.ok(centre[0]! > 100 && centre[1]! < 60 && centre[2]! < 60, `the product in the middle, got ${centre.join(',')}`);
    const wide = variant(done, 'x-post', 'jpeg')!;
    assert.deepEqual([wide.width, wide.height], [1200, 675]);

    // Bytes before and after, and the store as its subject (its fair share is its own).
    assert.equal(done.optimized?.bytesBefore, photo.length);
    assert.equal(done.optimized?.bytesAfter, done.assets.filter((asset) => asset.kind === 'variant').reduce((sum, asset) => sum + asset.bytes, 0));
    assert.equal(done.subject, 'store-1');
    assert.deepEqual([upscaled!.subject, cutOut!.subject], ['store-1', 'store-1']);
  });

  it('keeps a transparent photo transparent, and skips the upscale when it is large enough', async () => {
    const photo = await transparentPhoto(600);
    const source = await kiln.client.sources.upload(photo);
    const done = await kiln.client.waitFor((await kiln.client.generate({ operation: 'optimize', sourceId: source.id, background: 'transparent', targetShortEdge: 512, platforms: ['thumbnail', 'banner'], formats: ['png'] })).id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.parts.map((part) => part.operation), ['remove-background'], 'no upscale: its short edge is 600');
    const thumbnail = await download(variant(done, 'thumbnail', 'png')!.url);
    assert.equal((await sharp(thumbnail).metadata()).hasAlpha, true);
    assert.equal((await pixelAt(thumbnail, 3, 3))[3], 0, 'its corner stays transparent');
    const centre = await pixelAt(thumbnail, 200, 200);
    assert.equal(centre[3], 255);
    assert.ok(centre[2]! > 100 && centre[0]! < 60, `the disc in the middle, got ${centre.join(',')}`);
    const banner = await download(variant(done, 'banner', 'png')!.url);
    assert.equal((await pixelAt(banner, 50, 250))[3], 0, 'padded with transparency at the sides');
  });

  it('optimises a batch of photos for several stores, each a composite of its own', async () => {
    const sources = await Promise.all([180, 220, 260].map(async (edge) => kiln.client.sources.upload(await opaquePhoto(edge, edge))));
    const { batchId, ids } = await kiln.client.batch({ items: sources.map((source, index) => ({ operation: 'optimize' as const, sourceId: source.id, targetShortEdge: 256, subject: `store-${index}`, platforms: ['thumbnail' as const] })) });
    const finals = await Promise.all(ids.map((id) => kiln.client.waitFor(id)));
    assert.deepEqual(finals.map((status) => status.state), ['succeeded', 'succeeded', 'succeeded']);
    // 180 and 220 px need ×2; 260 px does not.
    assert.deepEqual(finals.map((status) => status.parts.length), [2, 2, 1]);
    const batch = await kiln.client.batchStatus({ batchId });
    assert.deepEqual([batch.total, batch.counts.succeeded, batch.done], [3, 3, true], 'the batch counts its items, not their steps');
  });

  it('refuses what it cannot do with clear errors, writing nothing', async () => {
    const source = await kiln.client.sources.upload(await opaquePhoto(100, 100));
    const before = await kiln.countGenerations();
    const model = await rejects(kiln.client.generate({ operation: 'optimize', sourceId: source.id, model: 'bria/remove-background' }), 'BAD_REQUEST', /name a tier instead of a model/);
    assert.deepEqual(Object.keys(fieldsOf(model)), ['model']);
    const outputs = await rejects(kiln.client.generate({ operation: 'optimize', sourceId: source.id, outputs: 2 }), 'BAD_REQUEST', /one catalogue image/);
    assert.deepEqual(Object.keys(fieldsOf(outputs)), ['outputs']);
    const target = await rejects(kiln.client.generate({ operation: 'optimize', sourceId: source.id, targetShortEdge: 99_999 }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(target), { targetShortEdge: ['targetShortEdge must be between 256 and 4096 pixels'] });
    const background = await rejects(kiln.client.generate({ operation: 'optimize', sourceId: source.id, background: 'green' as 'white' }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(background), { background: ['background must be one of: white, transparent'] });
    // The free tier may not remove backgrounds: the optimiser says so, naming the operation.
    const free = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, free.tenantId, { tier: 'free' });
    const freeSource = await free.client.sources.upload(await opaquePhoto(100, 100));
    const forbidden = await rejects(free.client.generate({ operation: 'optimize', sourceId: freeSource.id }), 'FORBIDDEN', /not available on the free tier; it may use no model for remove-background/);
    assert.deepEqual(Object.keys(fieldsOf(forbidden)), ['operation']);
    assert.equal(await kiln.countGenerations(), before);
  });
});

describe('the optimiser and a worker that dies between two paid steps', () => {
  it('never pays for the first step again', async () => {
    const rig = await startApiBesideProvider({ min: 100, max: 200 });
    const { simulator, api, workerEnv } = rig;
    try {
      await updateTenant(api.app.database.db, api.tenantId, { tier: 'standard' });
      const source = await api.client.sources.upload(await opaquePhoto(200, 200));
      const first = await startWorkerProcess(workerEnv);
      await first.ready;
      // Killed as soon as the first step has succeeded: the second is queued, or already at the provider.
      const { id } = await api.client.generate({ operation: 'optimize', sourceId: source.id, targetShortEdge: 400, platforms: ['thumbnail'] });
      const upscaleId = await until(async () => {
        const status = await api.client.status({ id });
        return status.parts[0]?.state === 'succeeded' ? status.parts[0].id : undefined;
      }, 60_000);
      assert.notEqual(await first.crash(), 0, 'the worker was killed');
      const second = await startWorkerProcess(workerEnv);
      try {
        await second.ready;
        const done = await api.client.waitFor(id, { timeoutMs: 120_000 });
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        const removalId = done.parts[1]!.id;
        const creates = simulator.stats().createsByWebhookTag;
        assert.equal(creates[upscaleId], 1, 'the upscale was paid for once');
        assert.equal(creates[removalId], 1, 'the background removal once');
      } finally {
        await second.stop();
      }
    } finally {
      await rig.stop();
    }
  });
});
