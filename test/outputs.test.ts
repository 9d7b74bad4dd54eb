// Several outputs of one request: a model that takes num_outputs makes them in one prediction,
// each output is an original with its own variants, and status, list and events show them all.
// A model without num_outputs makes one prediction per output, each with its own seed: the
// generation is a composite of those parts, and is delivered from their images.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { GenerationStatus } from '../client-sdk/index.ts';
import { grantCredits, toMicroUsd } from '../db/credits.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const originals = (status: GenerationStatus) => status.assets.filter((asset) => asset.kind === 'original');

describe('several outputs', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0' } });
  });
  after(() => kiln.stop());

  const creates = () => kiln.app.simulator?.stats().creates ?? 0;

  it('makes four outputs in one prediction, each with its own variants, shown by status, list and events', async () => {
    const before = creates();
    const { id } = await kiln.client.generate({ prompt: 'four lighthouses', outputs: 4, seed: 11, platforms: ['thumbnail', 'x-post'], formats: ['webp'] });
    const done = await kiln.client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(creates() - before, 1, 'one prediction');
    assert.equal(done.outputs, 4);
    assert.deepEqual(originals(done).map((asset) => asset.outputIndex), [0, 1, 2, 3]);
    assert.equal(new Set(originals(done).map((asset) => asset.contentHash)).size, 4, 'four different pictures');
    for (const outputIndex of [0, 1, 2, 3]) {
      const variants = done.assets.filter((asset) => asset.kind === 'variant' && asset.outputIndex === outputIndex);
      assert.deepEqual(variants.map((asset) => `${asset.platform} ${asset.width}×${asset.height}`).sort(), ['thumbnail 400×400', 'x-post 1200×675'], `output ${outputIndex}`);
      const thumbnail = variants.find((asset) => asset.platform === 'thumbnail');
      assert.ok(thumbnail);
      const meta = await sharp(Buffer.from(await (await fetch(thumbnail.url)).arrayBuffer())).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 400, 400]);
    }
    const succeeded = done.events.find((event) => event.stage === 'succeeded');
    assert.deepEqual([succeeded?.data.assets, succeeded?.data.outputs], [12, 4]);

    const listed = (await kiln.client.list({ limit: 5 })).items.find((item) => item.id === id);
    assert.equal(listed?.assets.length, 12);
    const events = [];
    for await (const event of kiln.client.watch({ generationId: id }, { signal: AbortSignal.timeout(10_000) })) {
      events.push(event);
      if (event.stage === 'succeeded') break;
    }
    assert.equal(events.at(-1)?.assets?.length, 12, 'the realtime success carries every output');
  });

  it('serves a repeat from cache with every output, and charges four images', async () => {
    const tenant = await kiln.newTenant();
    await grantCredits(kiln.app.database.db, tenant.tenantId, toMicroUsd(1), 'test');
    const request = { prompt: 'four boats', outputs: 4, seed: 5, platforms: ['thumbnail' as const] };
    const { id } = await tenant.client.generate(request);
    const row = await kiln.app.database.db.selectFrom('generations').select('reserved').where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(Number(row.reserved), 12_000, 'four flux-schnell images at $0.003');
    const first = await tenant.client.waitFor(id);
    const before = creates();
    const again = await tenant.client.waitFor((await tenant.client.generate(request)).id);
    assert.deepEqual(again.servedFrom, { kind: 'cache', generationId: id });
    assert.equal(creates(), before);
    assert.deepEqual(originals(again).map((asset) => asset.contentHash), originals(first).map((asset) => asset.contentHash));
    const credits = await tenant.client.credits();
    assert.deepEqual(
      credits.usage.map((usage) => [usage.generations, usage.chargedUsd, usage.providerCostUsd]),
      [[2, 0.0132, 0.012]],
      'the four images once, and the copy at its cache price (10 %)',
    );
  });

  it('asks sdxl for num_outputs too', async () => {
    const { id } = await kiln.client.generate({ prompt: 'two chairs', model: 'stability-ai/sdxl', outputs: 2 });
    const done = await kiln.client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(originals(done).map((asset) => asset.outputIndex), [0, 1]);
  });

  it('makes one prediction per output, each with its own seed, for a model without num_outputs', async () => {
    const source = await kiln.client.sources.upload(await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } }).png().toBuffer());
    const before = creates();
    const { id } = await kiln.client.generate({ operation: 'edit', sourceId: source.id, prompt: 'a red hat', outputs: 4, seed: 7, platforms: ['thumbnail'], formats: ['webp'] });
    const done = await kiln.client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(creates() - before, 4, 'one prediction per output');
    assert.equal(done.outputs, 4);
    assert.equal(done.predictionId, null, 'the composite made no prediction of its own');
    assert.deepEqual(originals(done).map((asset) => asset.outputIndex), [0, 1, 2, 3]);
    assert.equal(new Set(originals(done).map((asset) => asset.contentHash)).size, 4, 'four different pictures');
    for (const outputIndex of [0, 1, 2, 3]) {
      const variants = done.assets.filter((asset) => asset.kind === 'variant' && asset.outputIndex === outputIndex);
      assert.deepEqual(variants.map((asset) => `${asset.platform} ${asset.width}×${asset.height}`), ['thumbnail 400×400'], `output ${outputIndex}`);
    }
    // Its parts: one generation each, in order, each with one image and no variants of its own.
    assert.deepEqual(done.parts.map((part) => [part.operation, part.state]), Array(4).fill(['edit', 'succeeded']));
    const parts = await Promise.all(done.parts.map((part) => kiln.client.status({ id: part.id })));
    assert.deepEqual(parts.map((part) => [part.partOf, part.assets.length]), Array(4).fill([id, 1]));
    assert.deepEqual(parts.map((part) => part.assets[0]?.contentHash), originals(done).map((asset) => asset.contentHash));
    // Seeds 7, 8, 9, 10: the same edit seeded 9 is the third part's picture (served from it).
    const third = await kiln.client.waitFor((await kiln.client.generate({ operation: 'edit', sourceId: source.id, prompt: 'a red hat', seed: 9, platforms: ['thumbnail'] })).id);
    assert.deepEqual(third.servedFrom, { kind: 'cache', generationId: done.parts[2]?.id });
    assert.equal(originals(third)[0]?.contentHash, originals(done)[2]?.contentHash);
    // Listed once, as the request: its parts are not among the tenant's generations.
    const listed = (await kiln.client.list({ limit: 100 })).items.map((item) => item.id);
    assert.ok(listed.includes(id));
    assert.deepEqual(listed.filter((listedId) => done.parts.some((part) => part.id === listedId)), []);
  });

  it('quotes a request made of parts as one generation when its credit falls short', async () => {
    const tenant = await kiln.newTenant();
    await grantCredits(kiln.app.database.db, tenant.tenantId, toMicroUsd(0.01), 'test');
    const source = await tenant.client.sources.upload(await sharp({ create: { width: 64, height: 48, channels: 3, background: '#606060' } }).png().toBuffer());
    const before = await kiln.countGenerations();
    await rejects(
      tenant.client.generate({ operation: 'edit', sourceId: source.id, prompt: 'four hats', outputs: 4, platforms: ['thumbnail'] }),
      'PAYMENT_REQUIRED',
      /^not enough credit: this generation reserves \$[0-9.]+, and \$0\.01 is available; nothing was queued$/,
    );
    assert.equal(await kiln.countGenerations(), before, 'nothing written');
  });

  it('refuses outputs outside 1–4 and more variants than allowed, writing nothing', async () => {
    const before = await kiln.countGenerations();
    const many = await rejects(kiln.client.generate({ prompt: 'five', outputs: 5 }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(many), { outputs: ['outputs must be between 1 and 4'] });
    const tooMuch = await rejects(kiln.client.generate({ prompt: 'big', outputs: 4, platforms: ['instagram-post', 'instagram-story', 'x-post'], formats: ['webp', 'png', 'avif', 'jpeg'] }), 'BAD_REQUEST', /× outputs must be at most 40 variants/);
    assert.deepEqual(Object.keys(fieldsOf(tooMuch)), ['formats']);
    assert.equal(await kiln.countGenerations(), before);
  });
});
