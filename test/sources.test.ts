// Image sources through the API: uploads and URLs in, each image kept once per tenant and
// answered by id. The app under test may reach loopback (KILN_SOURCE_ALLOW_PRIVATE, where the
// image server of the test lives); another with the default settings shows that loopback is
// refused there. The guard's finer cases (DNS answers, every redirect) are tested beside it.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createKilnClient, type KilnClient } from '../client-sdk/index.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const ADMIN_TOKEN = 'admin-token-for-the-source-tests-0123456';
const MAX_SOURCE_BYTES = 256 * 1024;

const solid = (width: number, height: number, format: 'png' | 'jpeg') =>
  sharp({ create: { width, height, channels: 3, background: { r: (width * 7) % 256, g: (height * 13) % 256, b: 90 } } })[format]().toBuffer();

/** Random pixels, so the PNG really is as large as its size suggests. */
const noisy = (width: number, height: number) => sharp(Buffer.from(Array.from({ length: width * height * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width, height, channels: 3 } }).png().toBuffer();

describe('image sources', () => {
  let kiln: TestKiln;
  let admin: KilnClient;
  let images: http.Server;
  let imageBase: string;
  const served = new Map<string, { status?: number; headers?: Record<string, string>; body?: Buffer | string; delayMs?: number }>();

  before(async () => {
    images = http.createServer((req, res) => {
      const route = served.get(req.url ?? '');
      if (!route) return void res.writeHead(404).end();
      const send = () => res.writeHead(route.status ?? 200, route.headers ?? {}).end(route.body);
      if (route.delayMs) setTimeout(send, route.delayMs).unref();
      else send();
    });
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
    kiln = await startKiln({
      env: {
        KILN_ROLE: 'api',
        KILN_ADMIN_TOKEN: ADMIN_TOKEN,
        KILN_AUTH_CACHE_MS: '0',
        KILN_SOURCE_ALLOW_PRIVATE: 'true',
        KILN_MAX_SOURCE_BYTES: String(MAX_SOURCE_BYTES),
        KILN_MAX_INPUT_PIXELS: '1000000',
        KILN_SOURCE_FETCH_TIMEOUT_MS: '1000',
      },
    });
    admin = createKilnClient({ url: kiln.url, apiKey: ADMIN_TOKEN });
    await admin.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, sourceHosts: ['127.0.0.1'] });
  });
  after(async () => {
    admin.close();
    await kiln.stop();
    await new Promise<void>((resolve) => images.close(() => resolve()));
  });

  const countSources = async () => Number((await kiln.app.database.db.selectFrom('image_sources').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  it('keeps an uploaded PNG or JPEG with its size, serves it, and answers the same bytes with the same source', async () => {
    const png = await solid(64, 48, 'png');
    const stored = await kiln.client.sources.upload(png, { filename: 'red.png' });
    assert.deepEqual([stored.format, stored.width, stored.height, stored.bytes, stored.origin, stored.filename, stored.fetchedFrom, stored.deduplicated], ['png', 64, 48, png.length, 'upload', 'red.png', null, false]);
    assert.match(stored.url, /\/assets\/[0-9a-f]{64}\.png$/);
    const asset = await fetch(stored.url);
    assert.equal(asset.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await asset.arrayBuffer()), png);

    const again = await kiln.client.sources.upload(new Blob([png]));
    assert.equal(again.id, stored.id);
    assert.equal(again.deduplicated, true);
    assert.equal(again.filename, 'red.png', 'the first upload\'s name stays');
    const got = await kiln.client.sources.get({ id: stored.id });
    assert.deepEqual({ ...got, deduplicated: false }, { ...stored, createdAt: got.createdAt });

    const jpeg = await solid(30, 20, 'jpeg');
    const fromJpeg = await kiln.client.sources.upload(jpeg);
    assert.deepEqual([fromJpeg.format, fromJpeg.width, fromJpeg.height, fromJpeg.filename], ['jpeg', 30, 20, null]);
    assert.match(fromJpeg.url, /\.jpg$/);
  });

  it('refuses what is not a PNG, JPEG, WebP or AVIF image, and stores nothing', async () => {
    const before = await countSources();
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>';
    for (const body of [new Blob([svg], { type: 'image/svg+xml' }), new TextEncoder().encode('just some text, no image at all')]) {
      const error = await rejects(kiln.client.sources.upload(body), 'BAD_REQUEST', /not a PNG, JPEG, WebP or AVIF image/);
      assert.deepEqual(Object.keys(fieldsOf(error)), ['file']);
    }
    const gif = Buffer.from('R0lGODlhAQABAAAAACwAAAAAAQABAAA=', 'base64');
    await rejects(kiln.client.sources.upload(gif), 'BAD_REQUEST', /not a PNG/);
    // PNG's signature on something else: it is read, and refused as unreadable.
    await rejects(kiln.client.sources.upload(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(40)])), 'BAD_REQUEST', /cannot be read/);
    assert.equal(await countSources(), before);
  });

  it('refuses an upload over the limit with 413, whether it is a little over or far over, and stores nothing', async () => {
    const before = await countSources();
    const big = await noisy(300, 300); // ~270 KB of random pixels
    assert.ok(big.length > MAX_SOURCE_BYTES, `${big.length} bytes`);
    const tooBig = await rejects(kiln.client.sources.upload(Buffer.concat([big, Buffer.alloc(80 * 1024)])), 'PAYLOAD_TOO_LARGE', /over the \d+-byte limit; nothing was stored/);
    assert.equal((tooBig.data as { httpStatus?: number } | undefined)?.httpStatus, 413);
    // Within the form's allowance but over the image limit: refused by the service, as 413 too.
    await rejects(kiln.client.sources.upload(big), 'PAYLOAD_TOO_LARGE', /file: the image is \d+ bytes, over the 262144-byte limit/);

    // Declared far over the limit: answered at once, without reading the body.
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.request(`${kiln.url}/trpc/sources.upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${kiln.apiKey}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(1024 * 1024 * 1024) },
      });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
        request.destroy();
      });
      request.on('error', reject);
      request.write('--x\r\n');
    });
    assert.equal(status, 413);

    // Sent in chunks with no length declared: cut off at the limit as it streams.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = http.request(`${kiln.url}/trpc/sources.upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${kiln.apiKey}`, 'content-type': 'multipart/form-data; boundary=x', 'transfer-encoding': 'chunked' },
      });
      request.on('response', (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      request.on('error', reject);
      request.write('--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n');
      request.end(Buffer.concat([big, Buffer.alloc(100 * 1024), Buffer.from('\r\n--x--\r\n')]));
    });
    assert.equal(chunked.status, 413, chunked.body);
    assert.match(chunked.body, /upload over the \d+-byte limit; nothing was stored/);
    assert.equal(await countSources(), before);
  });

  it('refuses an image with more pixels than the limit, before decoding it', async () => {
    const wide = await solid(1001, 1000, 'png');
    assert.ok(wide.length < MAX_SOURCE_BYTES);
    const error = await rejects(kiln.client.sources.upload(wide), 'BAD_REQUEST', /1001×1000 \(1 megapixels\), over the 1 megapixels limit/);
    assert.deepEqual(Object.keys(fieldsOf(error)), ['file']);
  });

  it('fetches an image from an allowed host, and answers the same image with the same source', async () => {
    const png = await solid(40, 40, 'png');
    served.set('/photo.png', { headers: { 'content-type': 'image/png' }, body: png });
    served.set('/copy.png', { headers: { 'content-type': 'application/octet-stream' }, body: png });
    const stored = await kiln.client.sources.fromUrl({ url: `${imageBase}/photo.png` });
    assert.deepEqual([stored.origin, stored.fetchedFrom, stored.format, stored.width, stored.height, stored.deduplicated], ['url', `${imageBase}/photo.png`, 'png', 40, 40, false]);
    assert.deepEqual(Buffer.from(await (await fetch(stored.url)).arrayBuffer()), png);
    const again = await kiln.client.sources.fromUrl({ url: `${imageBase}/copy.png` });
    assert.deepEqual([again.id, again.deduplicated, again.fetchedFrom], [stored.id, true, `${imageBase}/photo.png`]);
  });

  it('refuses hosts the tenant does not allow, and URL sources altogether for a tenant with no hosts', async () => {
    served.set('/other.png', { headers: { 'content-type': 'image/png' }, body: await solid(8, 8, 'png') });
    const error = await rejects(kiln.client.sources.fromUrl({ url: `${imageBase.replace('127.0.0.1', 'localhost')}/other.png` }), 'BAD_REQUEST', /host localhost is not among this tenant's allowed source hosts/);
    assert.deepEqual(Object.keys(fieldsOf(error)), ['url']);
    const { client } = await kiln.newTenant();
    await rejects(client.sources.fromUrl({ url: `${imageBase}/other.png` }), 'BAD_REQUEST', /URL sources are off for this tenant/);
  });

  it('checks redirects, the size while it streams, and the time', async () => {
    // Even a host the operator allowed by mistake: a metadata address is never fetched.
    await admin.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, sourceHosts: ['127.0.0.1', '169.254.169.254'] });
    served.set('/to-metadata', { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/to-metadata` }), 'BAD_REQUEST', /url: 169\.254\.169\.254 resolves to a private address/);
    for (let hop = 0; hop < 6; hop += 1) served.set(`/hop/${hop}`, { status: 302, headers: { location: `/hop/${hop + 1}` } });
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/hop/0` }), 'BAD_REQUEST', /more than 5 redirects/);
    served.set('/big.png', { headers: { 'content-type': 'image/png' }, body: await noisy(300, 300) });
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/big.png` }), 'BAD_REQUEST', /over the 262144-byte limit/);
    served.set('/slow.png', { headers: { 'content-type': 'image/png' }, body: await solid(8, 8, 'png'), delayMs: 3_000 });
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/slow.png` }), 'BAD_REQUEST', /did not arrive within 1 s/);
    served.set('/page', { headers: { 'content-type': 'text/html' }, body: '<html><body>a page, not an image</body></html>' });
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/page` }), 'BAD_REQUEST', /does not serve a PNG, JPEG, WebP or AVIF image/);
    await rejects(kiln.client.sources.fromUrl({ url: `${imageBase}/nothing-here.png` }), 'BAD_REQUEST', /answered 404: no image at this URL/);
  });

  it('keeps a tenant\'s sources its own: another tenant\'s id is not found, like a missing one', async () => {
    const png = await solid(12, 34, 'png');
    const mine = await kiln.client.sources.upload(png);
    const other = await kiln.newTenant();
    const stranger = await rejects(other.client.sources.get({ id: mine.id }), 'NOT_FOUND');
    const missingId = '0190a0c0-0000-7000-8000-000000000000';
    const missing = await rejects(other.client.sources.get({ id: missingId }), 'NOT_FOUND');
    assert.equal(stranger.message.replace(mine.id, 'ID'), missing.message.replace(missingId, 'ID'));
    // The same bytes are another tenant's own source.
    const theirs = await other.client.sources.upload(png);
    assert.notEqual(theirs.id, mine.id);
    assert.equal(theirs.deduplicated, false);
    assert.equal(theirs.url, mine.url, 'one object in the store');
  });

  it('refuses bad input with the field it is about', async () => {
    for (const [url, message] of [['ftp://127.0.0.1/x.png', /only http and https/], ['not a url', /not a valid absolute URL/], ['', /url must not be empty/]] as const) {
      const error = await rejects(kiln.client.sources.fromUrl({ url }), 'BAD_REQUEST', message);
      assert.deepEqual(Object.keys(fieldsOf(error)), ['url']);
    }
    assert.deepEqual(Object.keys(fieldsOf(await rejects(kiln.client.sources.get({ id: 'nope' }), 'BAD_REQUEST', /source UUID/))), ['id']);
    // An upload as JSON, or a form whose file is text.
    await rejects(kiln.client.trpc.sources.upload.mutate({ file: 'x' } as unknown as FormData), 'BAD_REQUEST', /multipart\/form-data/);
    const form = new FormData();
    form.append('file', 'not a file');
    assert.deepEqual(Object.keys(fieldsOf(await rejects(kiln.client.trpc.sources.upload.mutate(form), 'BAD_REQUEST', /file must be a file part/))), ['file']);
    const badHosts = await rejects(admin.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, sourceHosts: ['cdn.shop.example', 'https://x.example/'] }), 'BAD_REQUEST', /is not a host/);
    assert.deepEqual(Object.keys(fieldsOf(badHosts)), ['sourceHosts.1']);
  });

  it('counts uploads and fetches against the tenant\'s request budget', async () => {
    const { tenantId, client } = await kiln.newTenant();
    await admin.trpc.admin.tenants.set.mutate({ tenant: tenantId, requestsPerMinute: 1, requestBurst: 1, sourceHosts: ['127.0.0.1', '*.Shop.Example'] });
    const listed = (await admin.trpc.admin.tenants.list.query()).find((tenant) => tenant.id === tenantId);
    assert.deepEqual(listed?.sourceHosts, ['127.0.0.1', '*.shop.example']);
    await client.sources.upload(await solid(5, 5, 'png'));
    await rejects(client.sources.upload(await solid(6, 6, 'png')), 'TOO_MANY_REQUESTS');
    await rejects(client.sources.fromUrl({ url: `${imageBase}/photo.png` }), 'TOO_MANY_REQUESTS');
  });
});

describe('image sources with the default settings', () => {
  let kiln: TestKiln;
  let images: http.Server;
  let imageUrl: string;
  before(async () => {
    const png = await solid(8, 8, 'png');
    images = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(png));
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/image.png`;
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
    await kiln.app.database.db.updateTable('tenants').set({ source_hosts: ['127.0.0.1', 'localhost'] }).where('id', '=', kiln.tenantId).execute();
  });
  after(async () => {
    await kiln.stop();
    await new Promise<void>((resolve) => images.close(() => resolve()));
  });

  it('refuses a loopback address even on an allowed host, saying only that it is private', async () => {
    await rejects(kiln.client.sources.fromUrl({ url: imageUrl }), 'BAD_REQUEST', /^url: 127\.0\.0\.1 resolves to a private address; only images on public addresses are fetched$/);
    const byName = await rejects(kiln.client.sources.fromUrl({ url: imageUrl.replace('127.0.0.1', 'localhost') }), 'BAD_REQUEST', /^url: localhost resolves to a private address/);
    assert.doesNotMatch(byName.message, /127\.0\.0\.1|::1/);
  });
});
