// Reference images end to end: sources uploaded through the typed client and named as a request's
// `references`, routed to the one model that takes them (google/nano-banana), every input image
// uploaded to the provider's Files API once and named by URL in its image_input, and the result
// checked by its pixels — the simulator's nano-banana shows each image as a tile in a strip along
// the bottom of its picture (jobs/simulator/README.md). The provider is the simulator behind a small
// gateway that counts the uploads that reach it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { GenerationStatus, KilnClient } from '../client-sdk/index.ts';
import { updateTenant } from '../db/tenants.ts';
import { startProviderGateway, type ProviderGateway } from './support/provider-gateway.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { stopSimulators } from './support/simulator.ts';

type Rgb = readonly [number, number, number];
const YELLOW: Rgb = [230, 210, 40];
const GREEN: Rgb = [30, 190, 70];
const BLUE: Rgb = [40, 60, 220];
const MAGENTA: Rgb = [200, 40, 200];

const solid = ([r, g, b]: Rgb) => sharp({ create: { width: 24, height: 24, channels: 3, background: { r, g, b } } }).png().toBuffer();

/** A product photo in miniature: a light grey background, a red box in the middle. */
async function productPhoto(width: number, height: number): Promise<Buffer> {
  const box = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect x="${width / 4}" y="${height / 4}" width="${width / 2}" height="${height / 2}" fill="#c02020"/></svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 235, g: 235, b: 235 } } }).composite([{ input: Buffer.from(box) }]).png().toBuffer();
}

const original = (status: GenerationStatus) => {
  const asset = status.assets.find((candidate) => candidate.kind === 'original');
  assert.ok(asset, 'the original is kept');
  return asset;
};

/** The original's pixels, and a reader of one pixel's RGB. */
async function pixelsOf(status: GenerationStatus) {
  const bytes = Buffer.from(await (await fetch(original(status).url)).arrayBuffer());
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number): number[] => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
  return { width: info.width, height: info.height, at };
}

const near = (actual: readonly number[], expected: readonly number[], what: string) =>
  assert.ok(actual.every((value, c) => Math.abs(value - (expected[c] ?? 0)) <= 8), `${what}: ${actual.join(',')} is not ${expected.join(',')}`);

/** The centre of tile `index` of `count` in the strip along the bottom quarter. */
const tileCentre = (image: { width: number; height: number }, index: number, count: number): [number, number] => [
  Math.floor((Math.floor(image.width / count) * (2 * index + 1)) / 2),
  Math.floor(image.height - (image.height * 0.25) / 2),
];

const uploadEvents = (status: GenerationStatus) => status.events.filter((event) => event.stage === 'provider.input_uploaded').map((event) => event.data);


describe('reference images', () => {
  let gateway: ProviderGateway;
  let kiln: TestKiln;
  let client: KilnClient;
  const ids: Record<string, string> = {};

  before(async () => {
    gateway = await startProviderGateway();
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0', REPLICATE_BASE_URL: `${gateway.url}/v1`, REPLICATE_API_TOKEN: gateway.sim.apiToken, KILN_WEBHOOKS: 'off' } });
    // Standard tenants may use nano-banana (free ones may not).
    await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'standard' });
    client = kiln.client;
    const images: Record<string, Buffer> = { yellow: await solid(YELLOW), green: await solid(GREEN), blue: await solid(BLUE), magenta: await solid(MAGENTA), photo: await productPhoto(64, 48) };
    for (const [name, bytes] of Object.entries(images)) ids[name] = (await client.sources.upload(bytes, { filename: `${name}.png` })).id;
  });
  after(async () => {
    await kiln.stop();
    await gateway.close();
    await stopSimulators();
  });

  const refs = (...names: string[]) => names.map((name) => ids[name] ?? '');

  it('makes a picture with three references: each shows in its pixels, each uploaded once', async () => {
    const uploadsBefore = gateway.uploads();
    const { id } = await client.generate({ prompt: 'a shelf of tins', references: refs('yellow', 'green', 'blue'), seed: 11, platforms: ['thumbnail'] });
    const done = await client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual([done.operation, done.model], ['text-to-image', 'google/nano-banana'], 'references route to the model that takes them');
    const image = await pixelsOf(done);
    assert.equal(image.width, image.height, 'its 1:1 aspect ratio');
    for (const [index, colour] of [YELLOW, GREEN, BLUE].entries()) near(image.at(...tileCentre(image, index, 3)), colour, `reference ${index}`);
    assert.equal(gateway.uploads() - uploadsBefore, 3, 'three images, three uploads');
    assert.deepEqual(
      uploadEvents(done).map((data) => [data.sourceId, data.reference]).sort((a, b) => Number(a[1]) - Number(b[1])),
      refs('yellow', 'green', 'blue').map((sourceId, reference) => [sourceId, reference]),
      'each upload is an event naming its reference',
    );
  });

  it('edits a source with two references: the source is the picture, the references its tiles; a known one is not uploaded again', async () => {
    const uploadsBefore = gateway.uploads();
    const { id } = await client.generate({ operation: 'edit', sourceId: ids.photo ?? '', prompt: 'put these beside it', references: refs('green', 'magenta'), platforms: ['thumbnail'] });
    const done = await client.waitFor(id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual([done.operation, done.sourceId, done.model], ['edit', ids.photo, 'google/nano-banana']);
    assert.deepEqual(done.references, refs('green', 'magenta'), 'status shows the references, in order');
    const image = await pixelsOf(done);
    assert.deepEqual([image.width, image.height], [64, 48], "the source's size");
    near(image.at(32, 20), [192, 32, 32], "the source's red box, above the strip");
    near(image.at(...tileCentre(image, 0, 2)), GREEN, 'the first reference');
    near(image.at(...tileCentre(image, 1, 2)), MAGENTA, 'the second reference');
    assert.equal(gateway.uploads() - uploadsBefore, 2, 'the source and magenta; green lives at the provider already');
    assert.deepEqual(uploadEvents(done).map((data) => data.sourceId).sort(), [ids.photo, ids.magenta].sort());
  });

  it('serves identical references from cache; other references, or the same in another order, are other work', async () => {
    const first = await client.generate({ prompt: 'a shelf of tins', references: refs('yellow', 'green', 'blue'), seed: 11, platforms: ['x-post'] });
    const again = await client.waitFor(first.id);
    assert.equal(again.servedFrom?.kind, 'cache', 'the same prompt, seed and references');
    const [reordered, other] = await Promise.all([
      client.generate({ prompt: 'a shelf of tins', references: refs('green', 'yellow', 'blue'), seed: 11, platforms: ['thumbnail'] }),
      client.generate({ prompt: 'a shelf of tins', references: refs('yellow', 'green', 'magenta'), seed: 11, platforms: ['thumbnail'] }),
    ]);
    for (const { id } of [reordered, other]) {
      const done = await client.waitFor(id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.servedFrom, null, 'not the same input');
    }
  });

  it('fails a reference that does not decode, naming it, before anything reaches the provider', async () => {
    const whole = await sharp(Buffer.from(Array.from({ length: 48 * 48 * 3 }, (_, i) => (i * 29) % 256)), { raw: { width: 48, height: 48, channels: 3 } }).png().toBuffer();
    const broken = (await client.sources.upload(whole.subarray(0, Math.floor(whole.length * 0.6)))).id;
    const creates = gateway.sim.stats().creates;
    const { id } = await client.generate({ prompt: 'with a broken one', references: [ids.yellow ?? '', broken] });
    const done = await client.waitFor(id);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'unusable_source');
    assert.match(done.error?.message ?? '', new RegExp(`^reference 2 \\(references\\.1\\): source ${broken} cannot be decoded`));
    assert.equal(gateway.sim.stats().creates, creates, 'no create');
  });

  it('refuses bad references with the field at fault, and writes nothing', async () => {
    const before = await kiln.countGenerations();
    const five = await rejects(client.generate({ prompt: 'too many', references: [...refs('yellow', 'green', 'blue', 'magenta'), ids.photo ?? ''] }), 'BAD_REQUEST', /at most 4 references/);
    assert.deepEqual(fieldsOf(five), { references: ['at most 4 references'] });
    const twice = await rejects(client.generate({ prompt: 'twice', references: refs('yellow', 'yellow') }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(twice), { references: ['references must not repeat'] });
    const none = await rejects(client.generate({ prompt: 'none', references: [] }), 'BAD_REQUEST');
    assert.deepEqual(fieldsOf(none), { references: ['give at least one reference'] });
    const notAnId = await rejects(client.generate({ prompt: 'x', references: ['yellow'] }), 'BAD_REQUEST');
    assert.deepEqual(Object.keys(fieldsOf(notAnId)), ['references.0']);
    const onUpscale = await rejects(client.generate({ operation: 'upscale', sourceId: ids.photo ?? '', scale: 2, references: refs('yellow') } as never), 'BAD_REQUEST');
    assert.ok(JSON.stringify(fieldsOf(onUpscale)).includes('references'), 'upscale takes no references');

    const stranger = await kiln.newTenant();
    const theirs = (await stranger.client.sources.upload(await solid(YELLOW))).id;
    const foreign = await rejects(client.generate({ prompt: 'x', references: [ids.green ?? '', theirs] }), 'NOT_FOUND');
    assert.deepEqual(fieldsOf(foreign), { 'references.1': ['no such source'] });
    const unknown = randomUUID();
    const missing = await rejects(client.generate({ prompt: 'x', references: [ids.green ?? '', unknown] }), 'NOT_FOUND');
    assert.equal(foreign.message.replace(theirs, '<id>'), missing.message.replace(unknown, '<id>'), "another tenant's source looks exactly like a missing one");
    const inBatch = await rejects(client.batch({ items: [{ prompt: 'fine' }, { operation: 'edit', sourceId: ids.photo ?? '', prompt: 'x', references: [theirs] }] }), 'NOT_FOUND');
    assert.deepEqual(fieldsOf(inBatch), { 'items.1.references.0': ['no such source'] });

    const named = await rejects(
      client.generate({ prompt: 'x', references: refs('yellow'), model: 'black-forest-labs/flux-schnell' }),
      'BAD_REQUEST',
      /model black-forest-labs\/flux-schnell takes no reference images; with reference images use: google\/nano-banana/,
    );
    assert.deepEqual(fieldsOf(named), { model: ['the model takes no reference images'] });
    const namedEdit = await rejects(client.generate({ operation: 'edit', sourceId: ids.photo ?? '', prompt: 'x', references: refs('yellow'), model: 'black-forest-labs/flux-kontext-pro' }), 'BAD_REQUEST', /with reference images use: google\/nano-banana/);
    assert.deepEqual(Object.keys(fieldsOf(namedEdit)), ['model']);
    const ratio = await rejects(client.generate({ prompt: 'tall', references: refs('yellow'), aspectRatio: '9:21' }), 'BAD_REQUEST', /google\/nano-banana does not make 9:21 images/);
    assert.deepEqual(Object.keys(fieldsOf(ratio)), ['aspectRatio']);

    const free = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, free.tenantId, { tier: 'free' });
    const freeSource = (await free.client.sources.upload(await solid(GREEN))).id;
    const forbidden = await rejects(free.client.generate({ prompt: 'x', references: [freeSource] }), 'FORBIDDEN', /google\/nano-banana is not available on the free tier; it may use no model for text-to-image with reference images/);
    assert.deepEqual(fieldsOf(forbidden), { references: ['not available on the free tier'] });
    assert.equal(await kiln.countGenerations(), before);
  });

  it('keeps the references in the batch item it was given, and answers a repeated idempotency key with the first', async () => {
    const { ids: [itemId] } = await client.batch({ items: [{ operation: 'edit', sourceId: ids.photo ?? '', prompt: 'beside it', references: refs('blue') }] });
    const row = await kiln.app.database.db.selectFrom('generations').select(['request', 'model']).where('id', '=', itemId ?? '').executeTakeFirstOrThrow();
    assert.equal(row.model, 'google/nano-banana');
    assert.deepEqual(row.request.references?.map((reference) => [reference.kind, reference.kind === 'source' ? reference.sourceId : null, reference.format]), [['source', ids.blue, 'png']]);
    const key = randomUUID();
    const once = await client.generate({ prompt: 'keyed', references: refs('green'), idempotencyKey: key });
    const twice = await client.generate({ prompt: 'keyed', references: refs('green'), idempotencyKey: key });
    assert.deepEqual([twice.id, twice.deduplicated], [once.id, true]);
    await rejects(client.generate({ prompt: 'keyed', references: refs('blue'), idempotencyKey: key }), 'CONFLICT');
    await Promise.all([itemId ?? '', once.id].map((id) => client.waitFor(id)));
  });
});
