// Image operations end to end: a source uploaded through the typed client, an operation routed to
// its model in the model table, the input uploaded to the provider's Files API once and named by
// URL, and the result's variants checked by their pixels. The provider is the simulator behind a
// small gateway that counts what reaches it (file uploads, creates) and can refuse creates, as
// Replicate's rate limit does, so a create is retried after its input was uploaded.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { GenerationStatus, KilnClient } from '../client-sdk/index.ts';
import { grantCredits, toMicroUsd } from '../db/credits.ts';
import { updateTenant } from '../db/tenants.ts';
import { startProviderGateway, type ProviderGateway } from './support/provider-gateway.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { stopSimulators } from './support/simulator.ts';

/** A product photo in miniature: a light grey background, a red box in the middle. */
async function productPhoto(width: number, height: number): Promise<Buffer> {
  const box = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect x="${width / 4}" y="${height / 4}" width="${width / 2}" height="${height / 2}" fill="#c02020"/></svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 235, g: 235, b: 235 } } }).composite([{ input: Buffer.from(box) }]).png().toBuffer();
}

/** Mean absolute difference per RGB value (0–255) of two images, compared at `a`'s size. */
async function meanDifference(a: Buffer, b: Buffer): Promise<number> {
  const { width, height } = await sharp(a).metadata();
  const [pa, pb] = await Promise.all([sharp(a).removeAlpha().raw().toBuffer(), sharp(b).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer()]);
  let sum = 0;
  for (let i = 0; i < pa.length; i++) sum += Math.abs((pa[i] ?? 0) - (pb[i] ?? 0));
  return sum / pa.length;
}

const bytesOf = async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer());
const original = (status: GenerationStatus) => {
  const asset = status.assets.find((candidate) => candidate.kind === 'original');
  assert.ok(asset, 'the original is kept');
  return asset;
};
const stagesOf = (status: GenerationStatus) => status.events.map((event) => event.stage);


const kilnAgainst = (gateway: ProviderGateway, env: Record<string, string> = {}) =>
  startKiln({ env: { KILN_AUTH_CACHE_MS: '0', REPLICATE_BASE_URL: `${gateway.url}/v1`, REPLICATE_API_TOKEN: gateway.sim.apiToken, KILN_WEBHOOKS: 'off', ...env } });

describe('image operations', () => {
  let gateway: ProviderGateway;
  let kiln: TestKiln;
  let pro: KilnClient;
  let photo: Buffer;
  let sourceId: string;

  before(async () => {
    gateway = await startProviderGateway();
    kiln = await kilnAgainst(gateway);
    await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'pro' });
    pro = kiln.client;
    photo = await productPhoto(64, 48);
    sourceId = (await pro.sources.upload(photo, { filename: 'box.png' })).id;
  });
  after(async () => {
    await kiln.stop();
    await gateway.close();
    await stopSimulators();
  });

  it('upscales for real: the original is the source × scale, routed to a model that offers the scale', async () => {
    const { id } = await pro.generate({ operation: 'upscale', sourceId, scale: 2, platforms: ['thumbnail'] });
    const done = await pro.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual([done.operation, done.sourceId, done.prompt, done.model], ['upscale', sourceId, '', 'recraft-ai/recraft-crisp-upscale'], "pro's tier picks the quality upscaler");
    assert.deepEqual([original(done).width, original(done).height], [128, 96]);

    const { id: four } = await pro.generate({ operation: 'upscale', sourceId, scale: 4, platforms: ['thumbnail'] });
    const byFour = await pro.waitFor(four);
    assert.equal(byFour.model, 'nightmareai/real-esrgan', 'only real-esrgan offers ×4');
    assert.deepEqual([original(byFour).width, original(byFour).height], [256, 192]);
    const upscaled = await bytesOf(original(byFour).url);
    assert.ok((await meanDifference(upscaled, photo)) < 8, 'an upscale keeps the picture');
  });

  it('removes the background: PNG and WebP variants keep the transparency, JPEG has none', async () => {
    const { id } = await pro.generate({ operation: 'remove-background', sourceId, platforms: ['thumbnail'], formats: ['png', 'webp', 'jpeg'] });
    const done = await pro.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.model, 'bria/remove-background');
    const cutOut = await sharp(await bytesOf(original(done).url)).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([cutOut.info.width, cutOut.info.height, cutOut.info.channels], [64, 48, 4]);
    assert.equal(cutOut.data[3], 0, 'the corner is transparent');
    assert.equal(cutOut.data[(24 * 64 + 32) * 4 + 3], 255, 'the subject is opaque');
    for (const variant of done.assets.filter((asset) => asset.kind === 'variant')) {
      const { data, info } = await sharp(await bytesOf(variant.url)).raw().toBuffer({ resolveWithObject: true });
      if (variant.format === 'jpeg') {
        assert.equal(info.channels, 3, 'JPEG keeps no alpha');
        continue;
      }
      assert.equal(info.channels, 4, `${variant.format} keeps the alpha channel`);
      assert.equal(data[3], 0, `${variant.format}: the corner stays transparent`);
      assert.equal(data[(200 * info.width + 200) * 4 + 3], 255, `${variant.format}: the centre stays opaque`);
    }
  });

  it('edits visibly and keeps the size; the same edit of the same source is served from cache, another source never', async () => {
    const before = gateway.sim.stats().creates;
    const { id } = await pro.generate({ operation: 'edit', sourceId, prompt: 'make it a watercolour', seed: 7, platforms: ['thumbnail'] });
    const done = await pro.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.model, 'black-forest-labs/flux-kontext-pro');
    const edited = await bytesOf(original(done).url);
    assert.deepEqual([original(done).width, original(done).height], [64, 48]);
    assert.ok((await meanDifference(edited, photo)) > 20, 'an edit visibly changes the source');

    const { id: again } = await pro.generate({ operation: 'edit', sourceId, prompt: 'make it a watercolour', seed: 7, platforms: ['x-post'] });
    const repeated = await pro.waitFor(again);
    assert.deepEqual(repeated.servedFrom, { kind: 'cache', generationId: id });
    assert.equal(original(repeated).contentHash, original(done).contentHash);

    const other = (await pro.sources.upload(await productPhoto(64, 48 + 2))).id;
    const { id: elsewhere } = await pro.generate({ operation: 'edit', sourceId: other, prompt: 'make it a watercolour', seed: 7, platforms: ['thumbnail'] });
    const otherEdit = await pro.waitFor(elsewhere);
    assert.equal(otherEdit.servedFrom, null, 'another source is another input');
    assert.equal(gateway.sim.stats().creates - before, 2, 'two creates for three edits');
  });

  it('redraws image to image with a strength: 0 keeps the source, 1 leaves it', async () => {
    const outputs: Buffer[] = [];
    for (const strength of [0, 1]) {
      const { id } = await pro.generate({ operation: 'image-to-image', sourceId, prompt: 'a tin robot', strength, seed: 3, platforms: ['thumbnail'] });
      const done = await pro.waitFor(id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.model, 'black-forest-labs/flux-dev');
      const { width, height } = original(done);
      assert.ok(Math.abs(width / height - 4 / 3) < 0.1, `the source's shape: ${width}×${height}`);
      outputs.push(await bytesOf(original(done).url));
    }
    const [kept, redrawn] = outputs as [Buffer, Buffer];
    assert.ok((await meanDifference(kept, photo)) < 10, 'strength 0 gives the source back');
    assert.ok((await meanDifference(redrawn, photo)) > 20, 'strength 1 draws a new picture');
  });

  it('uploads a source to the provider once, across generations and across a retried create', async () => {
    const fresh = (await pro.sources.upload(await productPhoto(48, 48))).id;
    const uploadsBefore = gateway.uploads();
    const { id: first } = await pro.generate({ operation: 'upscale', sourceId: fresh, scale: 2, platforms: ['thumbnail'] });
    const firstDone = await pro.waitFor(first);
    assert.equal(firstDone.state, 'succeeded', JSON.stringify(firstDone.error));
    const uploaded = firstDone.events.find((event) => event.stage === 'provider.input_uploaded');
    assert.ok(uploaded, `the upload is an event: ${stagesOf(firstDone).join(', ')}`);
    assert.equal(uploaded.data.sourceId, fresh);
    assert.equal(gateway.uploads() - uploadsBefore, 1);
    // The provider's file is live and holds the source's bytes.
    const file = await fetch(`${gateway.url}/v1/files/${String(uploaded.data.fileId)}/download`, { headers: { authorization: `Bearer ${gateway.sim.apiToken}` } });
    assert.equal(file.status, 200);

    // Another operation on the same source, whose first create is refused (429) and retried.
    gateway.refuseCreates(1);
    const { id: second } = await pro.generate({ operation: 'remove-background', sourceId: fresh, platforms: ['thumbnail'] });
    const secondDone = await pro.waitFor(second);
    assert.equal(secondDone.state, 'succeeded', JSON.stringify(secondDone.error));
    assert.ok(stagesOf(secondDone).includes('deferred'), `the create was refused once: ${stagesOf(secondDone).join(', ')}`);
    assert.ok(!stagesOf(secondDone).includes('provider.input_uploaded'), 'its file was reused');
    assert.equal(gateway.uploads() - uploadsBefore, 1, 'one upload for both generations and the retry');
  });

  it('charges the operation model its price', async () => {
    const tenant = await kiln.newTenant();
    const db = kiln.app.database.db;
    await updateTenant(db, tenant.tenantId, { tier: 'pro' });
    await grantCredits(db, tenant.tenantId, toMicroUsd(1), 'test');
    const own = (await tenant.client.sources.upload(photo)).id;
    const { id: edit } = await tenant.client.generate({ operation: 'edit', sourceId: own, prompt: 'add a hat', platforms: ['thumbnail'] });
    const { id: cutOut } = await tenant.client.generate({ operation: 'remove-background', sourceId: own, platforms: ['thumbnail'] });
    const reserved = await db.selectFrom('generations').select(['id', 'reserved']).where('id', 'in', [edit, cutOut]).execute();
    assert.deepEqual(Object.fromEntries(reserved.map((row) => [row.id, Number(row.reserved)])), { [edit]: 40_000, [cutOut]: 18_000 }, 'kontext-pro $0.04 and bria $0.018 are reserved');
    await Promise.all([tenant.client.waitFor(edit), tenant.client.waitFor(cutOut)]);
    const settled = await tenant.client.credits();
    assert.deepEqual([settled.availableUsd, settled.heldUsd], [0.942, 0]);
    assert.deepEqual(
      settled.usage.map((row) => [row.model, row.chargedUsd, row.providerCostUsd]),
      [['black-forest-labs/flux-kontext-pro', 0.04, 0.04], ['bria/remove-background', 0.018, 0.018]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it('fails a source that does not decode for good, before anything reaches the provider', async () => {
    const whole = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 37) % 256)), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const truncated = whole.subarray(0, Math.floor(whole.length * 0.6));
    const broken = (await pro.sources.upload(truncated)).id; // its header is whole: accepted
    const [creates, uploads] = [gateway.sim.stats().creates, gateway.uploads()];
    const { id } = await pro.generate({ operation: 'upscale', sourceId: broken, scale: 2 });
    const done = await pro.waitFor(id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'unusable_source');
    assert.match(done.error?.message ?? '', /cannot be decoded/);
    assert.deepEqual([gateway.sim.stats().creates, gateway.uploads()], [creates, uploads], 'no upload, no create');
  });

  it('fails the followers of a leader whose source does not decode with it, without running each', async () => {
    const whole = await sharp(Buffer.from(Array.from({ length: 48 * 48 * 3 }, (_, i) => (i * 53) % 256)), { raw: { width: 48, height: 48, channels: 3 } }).png().toBuffer();
    const broken = (await pro.sources.upload(whole.subarray(0, Math.floor(whole.length * 0.6)))).id;
    // One statement: the second and third join the first (an upscale takes no seed, so it reuses by default).
    const { ids } = await pro.batch({ items: [1, 2, 3].map(() => ({ operation: 'upscale' as const, sourceId: broken, scale: 2 as const })) });
    const done = await Promise.all(ids.map((id) => pro.waitFor(id)));
    assert.deepEqual(done.map((generation) => [generation.state, generation.error?.code]), Array(3).fill(['failed', 'unusable_source']));
    const followers = await Promise.all(ids.slice(1).map((id) => pro.status({ id })));
    for (const follower of followers) {
      assert.deepEqual(follower.events.map((event) => event.stage), ['queued', 'cache.joined', 'failed'], 'it never ran on its own');
      assert.match(follower.error?.message ?? '', /the identical request it joined could not use its image/);
    }
  });

  it('refuses bad input with the field at fault, and writes nothing', async () => {
    const before = await kiln.countGenerations();
    const unknown = randomUUID();
    const missing = await rejects(pro.generate({ operation: 'upscale', sourceId: unknown, scale: 2 }), 'NOT_FOUND', /source .* was not found/);
    assert.deepEqual(fieldsOf(missing), { sourceId: ['no such source'] });

    const stranger = await kiln.newTenant();
    const theirs = (await stranger.client.sources.upload(await productPhoto(32, 32))).id;
    const foreign = await rejects(pro.generate({ operation: 'remove-background', sourceId: theirs }), 'NOT_FOUND');
    assert.equal(foreign.message.replace(theirs, '<id>'), missing.message.replace(unknown, '<id>'), "another tenant's source looks exactly like a missing one");

    const noPrompt = await rejects(pro.generate({ operation: 'edit', sourceId } as never), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(noPrompt), { prompt: ['prompt is required for edit: say what to change in the image'] });
    const strong = await rejects(pro.generate({ operation: 'image-to-image', sourceId, prompt: 'x', strength: 1.5 }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(strong), { strength: ['strength must be between 0 and 1'] });
    const scale = await rejects(pro.generate({ operation: 'upscale', sourceId, scale: 3 } as never), 'BAD_REQUEST');
    assert.deepEqual(Object.keys(fieldsOf(scale)), ['scale']);
    const wrongModel = await rejects(pro.generate({ operation: 'upscale', sourceId, scale: 2, model: 'black-forest-labs/flux-schnell' }), 'BAD_REQUEST', /does not do upscale; for upscale use: nightmareai\/real-esrgan, recraft-ai\/recraft-crisp-upscale/);
    assert.deepEqual(Object.keys(fieldsOf(wrongModel)), ['model']);
    const unknownOperation = await rejects(pro.generate({ operation: 'blur', sourceId } as never), 'BAD_REQUEST', /operation must be one of/);
    assert.deepEqual(Object.keys(fieldsOf(unknownOperation)), ['operation']);
    const inBatch = await rejects(pro.batch({ items: [{ prompt: 'fine' }, { operation: 'upscale', sourceId: unknown, scale: 2 }] }), 'NOT_FOUND');
    assert.deepEqual(fieldsOf(inBatch), { 'items.1.sourceId': ['no such source'] });

    const free = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, free.tenantId, { tier: 'free' });
    const freeSource = (await free.client.sources.upload(photo)).id;
    const edit = await rejects(free.client.generate({ operation: 'edit', sourceId: freeSource, prompt: 'a hat' }), 'FORBIDDEN', /flux-kontext-pro is not available on the free tier; it may use no model for edit/);
    assert.deepEqual(fieldsOf(edit), { operation: ['not available on the free tier'] });
    const upscaler = await rejects(free.client.generate({ operation: 'upscale', sourceId: freeSource, scale: 2, tier: 'quality' }), 'FORBIDDEN', /it may use for upscale: nightmareai\/real-esrgan/);
    assert.deepEqual(fieldsOf(upscaler), { tier: ['not available on the free tier'] });
    assert.equal(await kiln.countGenerations(), before);
  });

  it('lists each model with the operations it serves and its price', async () => {
    const models = await pro.models();
    const byId = new Map(models.map((model) => [model.id, model]));
    assert.deepEqual(byId.get('black-forest-labs/flux-dev')?.operations, ['text-to-image', 'image-to-image']);
    assert.deepEqual(byId.get('black-forest-labs/flux-kontext-pro')?.price, { per: 'image', usd: 0.04 });
    assert.deepEqual(byId.get('nightmareai/real-esrgan')?.price, { per: 'gpu-second', usd: 0.000225, hardware: 'T4', reserveSeconds: 30 });
  });
});

describe('an expired provider file', () => {
  let gateway: ProviderGateway;
  let kiln: TestKiln;
  before(async () => {
    // Files live 1.5 s at this provider, and are reused to the last moment.
    gateway = await startProviderGateway({ fileRetentionMs: 1_500 });
    kiln = await kilnAgainst(gateway, { KILN_INPUT_FILE_REUSE_MARGIN_SECONDS: '0' });
  });
  after(async () => {
    await kiln.stop();
    await gateway.close();
    await stopSimulators();
  });

  it('is uploaded again', async () => {
    const sourceId = (await kiln.client.sources.upload(await productPhoto(40, 30))).id;
    const first = await kiln.client.waitFor((await kiln.client.generate({ operation: 'upscale', sourceId, scale: 2 })).id);
    assert.equal(first.state, 'succeeded', JSON.stringify(first.error));
    assert.equal(gateway.uploads(), 1);
    const firstFile = String(first.events.find((event) => event.stage === 'provider.input_uploaded')?.data.fileId);
    await sleep(2_000);
    const gone = await fetch(`${gateway.url}/v1/files/${firstFile}`, { headers: { authorization: `Bearer ${gateway.sim.apiToken}` } });
    assert.equal(gone.status, 404, 'the provider deleted it');
    const second = await kiln.client.waitFor((await kiln.client.generate({ operation: 'upscale', sourceId, scale: 4 })).id);
    assert.equal(second.state, 'succeeded', JSON.stringify(second.error));
    assert.equal(gateway.uploads(), 2);
    assert.ok(second.events.some((event) => event.stage === 'provider.input_uploaded'));
  });
});
