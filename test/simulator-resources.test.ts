// The simulator's other Replicate resources: models and their versions, the account, files.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
