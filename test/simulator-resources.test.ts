// The simulator's other Replicate resources: models and their versions, the account, files.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Replicate from 'replicate';
import { KNOWN_MODELS, type Simulator } from '../jobs/simulator/index.ts';
import { validateInput } from '../jobs/simulator/validation.ts';
import { api, clientFor, startSimulator, stopSimulators } from './support/simulator.ts';

after(stopSimulators);

describe('models', () => {
  let sim: Simulator;
  let client: Replicate;
  before(async () => {
    sim = await startSimulator();
    client = clientFor(sim);
  });

  test('GET /v1/models/{owner}/{name} answers the model object, with its latest version and run count', async () => {
    await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'counted' }, wait: 10 });
    const model = await client.models.get('black-forest-labs', 'flux-schnell');
    assert.equal(model.url, 'https://replicate.com/black-forest-labs/flux-schnell');
    assert.deepEqual([model.owner, model.name, model.visibility, model.is_official], ['black-forest-labs', 'flux-schnell', 'public', true]);
    assert.equal(typeof model.description, 'string');
    assert.equal(model.run_count, 1);
    assert.match(model.latest_version?.id ?? '', /^[0-9a-f]{64}$/);
    assert.equal(typeof model.latest_version?.created_at, 'string');

    const sdxl = await client.models.get('stability-ai', 'sdxl');
    assert.equal(sdxl.is_official, false);
    assert.equal(sdxl.latest_version?.id, '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc');
  });

  test('the latest version publishes the Input schema the simulator validates against', async () => {
    const model = await client.models.get('black-forest-labs', 'flux-dev');
    const schema = model.latest_version?.openapi_schema as { components: { schemas: { Input: { required: string[]; properties: Record<string, { type?: string; enum?: string[]; minimum?: number; maximum?: number; default?: unknown }> }; Output: { type: string } } } };
    const { Input, Output } = schema.components.schemas;
    assert.deepEqual(Input.required, ['prompt']);
    assert.deepEqual(Input.properties.num_outputs, { ...Input.properties.num_outputs, type: 'integer', minimum: 1, maximum: 4, default: 1 });
    assert.ok(Input.properties.aspect_ratio?.enum?.includes('16:9'));
    assert.equal(Output.type, 'array');
    // What the schema allows is what validation accepts, and its bounds are where validation stops.
    const flux = KNOWN_MODELS.find((m) => m.name === 'flux-dev');
    assert.ok(flux);
    assert.equal(validateInput(flux, { prompt: 'x', num_outputs: Input.properties.num_outputs?.maximum }, 256).ok, true);
    assert.equal(validateInput(flux, { prompt: 'x', num_outputs: (Input.properties.num_outputs?.maximum ?? 0) + 1 }, 256).ok, false);

    const pro = await client.models.get('black-forest-labs', 'flux-1.1-pro');
    const proOutput = (pro.latest_version?.openapi_schema as { components: { schemas: { Output: { type: string; format?: string } } } }).components.schemas.Output;
    assert.deepEqual([proOutput.type, proOutput.format], ['string', 'uri'], 'flux-1.1-pro returns one URL');
  });

  test('a version can be read by id; unknown models and versions are 404 problem documents', async () => {
    const version = await client.models.versions.get('stability-ai', 'sdxl', '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b');
    assert.equal(version.id, '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b');
    for (const path of ['/v1/models/nobody/nothing', `/v1/models/stability-ai/sdxl/versions/${'0'.repeat(64)}`]) {
      const res = await api(sim, path);
      assert.equal(res.status, 404, path);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
    }
  });
});

describe('account', () => {
  test('GET /v1/account answers the account the token belongs to', async () => {
    const sim = await startSimulator();
    const account = await clientFor(sim).accounts.current();
    assert.deepEqual(account, { type: 'user', username: 'kiln-simulator', name: 'Kiln simulator' });
    assert.equal((await fetch(`${sim.url}/v1/account`)).status, 401);
  });

  test('the account is an option', async () => {
    const sim = await startSimulator({ account: { type: 'organization', username: 'acme', name: 'Acme Corp, Inc.', github_url: 'https://github.com/acme' } });
    assert.deepEqual(await clientFor(sim).accounts.current(), { type: 'organization', username: 'acme', name: 'Acme Corp, Inc.', github_url: 'https://github.com/acme' });
  });
});

describe('files', () => {
  let sim: Simulator;
  let client: Replicate;
  before(async () => {
    sim = await startSimulator({ maxFileBytes: 64 * 1024 });
    client = clientFor(sim);
  });

  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
  const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');

  test('POST /v1/files (the official client) answers Replicate\'s file object; it expires after 24 h', async () => {
    const file = await client.files.create(new File([png], 'pixel.png', { type: 'image/png' }), { purpose: 'test' });
    assert.match(file.id, /^[a-z2-7]{26}$/);
    assert.deepEqual(
      { ...file, id: undefined, created_at: undefined, expires_at: undefined },
      {
        id: undefined,
        name: 'pixel.png',
        content_type: 'image/png',
        size: png.length,
        etag: md5(png),
        checksums: { sha256: sha256(png), md5: md5(png) },
        metadata: { purpose: 'test' },
        created_at: undefined,
        expires_at: undefined,
        urls: { get: `${sim.url}/v1/files/${file.id}` },
      },
    );
    assert.equal(Date.parse(file.expires_at ?? '') - Date.parse(file.created_at), 24 * 3_600_000);
    assert.deepEqual(await client.files.get(file.id), file);
  });

  test('the bytes can be downloaded; DELETE answers 204 and the file is gone', async () => {
    const file = await client.files.create(png);
    assert.equal(file.content_type, 'application/octet-stream', 'a Buffer is sent untyped');
    const download = await api(sim, `/v1/files/${file.id}/download`);
    assert.equal(download.status, 200);
    assert.ok(Buffer.from(await download.arrayBuffer()).equals(png));
    assert.equal(await client.files.delete(file.id), true);
    for (const res of [await api(sim, `/v1/files/${file.id}`), await api(sim, `/v1/files/${file.id}`, { method: 'DELETE' }), await api(sim, `/v1/files/${file.id}/download`)]) {
      assert.equal(res.status, 404);
      assert.deepEqual(await res.json(), { title: 'Not found', detail: 'File not found', status: 404 });
    }
  });

  test('filename and type fields name and type the file; metadata must be a JSON object; content is required', async () => {
    const form = new FormData();
    form.append('content', new Blob([png]), 'ignored.bin');
    form.append('filename', 'chosen.png');
    form.append('type', 'image/png');
    const res = await fetch(`${sim.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${sim.apiToken}` }, body: form });
    assert.equal(res.status, 201);
    const file = (await res.json()) as { name: string; content_type: string };
    assert.deepEqual([file.name, file.content_type], ['chosen.png', 'image/png']);

    const bad = new FormData();
    bad.append('metadata', 'not json');
    bad.append('filename', 'x'.repeat(256));
    const refused = await fetch(`${sim.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${sim.apiToken}` }, body: bad });
    assert.equal(refused.status, 422);
    assert.deepEqual(
      ((await refused.json()) as { invalid_fields: { type: string; field: string }[] }).invalid_fields.map((f) => [f.type, f.field]),
      [
        ['required', '(root)'],
        ['string_lte', 'filename'],
        ['invalid_type', 'metadata'],
      ],
    );
    const notMultipart = await api(sim, '/v1/files', { method: 'POST', json: { content: 'x' } });
    assert.equal(notMultipart.status, 415);
  });

  test('a file over the limit is refused with 413; the default limit is Replicate\'s 100 MiB', async () => {
    const big = new FormData();
    big.append('content', new Blob([Buffer.alloc(64 * 1024 + 1)]), 'big.bin');
    const res = await fetch(`${sim.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${sim.apiToken}` }, body: big });
    assert.equal(res.status, 413);
    assert.deepEqual(await res.json(), { title: 'Payload too large', detail: 'Files must be less than 65536 bytes in size', status: 413 });

    // Against the default limit, announce 100 MiB and one byte (and send none): refused at once.
    const defaults = await startSimulator();
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(`${defaults.url}/v1/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${defaults.apiToken}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(100 * 1024 * 1024 + 64 * 1024 + 1) },
      });
      req.on('response', (response) => {
        resolve(response.statusCode);
        response.resume();
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(status, 413);
  });

  test('an expired file is gone', async () => {
    const shortLived = await startSimulator({ fileRetentionMs: 200 });
    const file = await clientFor(shortLived).files.create(png);
    await sleep(300);
    assert.equal((await api(shortLived, `/v1/files/${file.id}`)).status, 404);
  });
});
