// The model table: each model's price at the provider and the tenant tiers that may use it. A
// request may name an allowed model (or a model `tier`); one its tier may not use is refused
// with the allowed ones named, and nothing is written.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { updateTenant } from '../db/tenants.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

describe('models by tier', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api', KILN_AUTH_CACHE_MS: '0' } });
  });
  after(() => kiln.stop());

  async function tenantOn(tier: 'free' | 'standard' | 'pro') {
    const tenant = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, tenant.tenantId, { tier });
    return tenant;
  }

  it('lists every model with its price, and which the caller may use', async () => {
    const free = await tenantOn('free');
    const models = await free.client.models();
    assert.deepEqual(models, [
      { id: 'black-forest-labs/flux-schnell', operations: ['text-to-image'], tier: 'fast', price: { per: 'image', usd: 0.003 }, available: true },
      { id: 'stability-ai/sdxl', operations: ['text-to-image'], tier: 'balanced', price: { per: 'gpu-second', usd: 0.000975, hardware: 'L40S', reserveSeconds: 10 }, available: false },
      { id: 'black-forest-labs/flux-dev', operations: ['text-to-image', 'image-to-image'], tier: 'quality', price: { per: 'image', usd: 0.025 }, available: false },
      { id: 'black-forest-labs/flux-kontext-pro', operations: ['edit'], tier: 'quality', price: { per: 'image', usd: 0.04 }, available: false },
      { id: 'nightmareai/real-esrgan', operations: ['upscale'], tier: 'fast', price: { per: 'gpu-second', usd: 0.000225, hardware: 'T4', reserveSeconds: 30 }, available: true },
      { id: 'recraft-ai/recraft-crisp-upscale', operations: ['upscale'], tier: 'quality', price: { per: 'image', usd: 0.006 }, available: false },
      { id: 'bria/remove-background', operations: ['remove-background'], tier: 'fast', price: { per: 'image', usd: 0.018 }, available: false },
      { id: 'google/nano-banana', operations: ['text-to-image', 'edit'], tier: 'balanced', price: { per: 'image', usd: 0.039 }, available: false },
    ]);
    const pro = await tenantOn('pro');
    assert.ok((await pro.client.models()).every((model) => model.available));
  });

  it('refuses a model the tier may not use, naming the ones it may, and writes nothing', async () => {
    const { client } = await tenantOn('free');
    const before = await kiln.countGenerations();
    const byName = await rejects(
      client.generate({ prompt: 'too fine for free', model: 'black-forest-labs/flux-dev' }),
      'FORBIDDEN',
      /model black-forest-labs\/flux-dev is not available on the free tier; it may use: black-forest-labs\/flux-schnell/,
    );
    assert.deepEqual(fieldsOf(byName), { model: ['not available on the free tier'] });
    const byTier = await rejects(client.generate({ prompt: 'quality, please', tier: 'quality' }), 'FORBIDDEN', /not available on the free tier/);
    assert.deepEqual(fieldsOf(byTier), { tier: ['not available on the free tier'] });
    const inBatch = await rejects(client.batch({ items: [{ prompt: 'fine' }, { prompt: 'not fine', model: 'stability-ai/sdxl' }] }), 'FORBIDDEN', /stability-ai\/sdxl is not available/);
    assert.deepEqual(fieldsOf(inBatch), { 'items.1.model': ['not available on the free tier'] });
    assert.equal(await kiln.countGenerations(), before);
  });

  it('takes an allowed model by name, and the tier\'s choice without one', async () => {
    const { client } = await tenantOn('standard');
    const { id } = await client.generate({ prompt: 'balanced', model: 'stability-ai/sdxl' });
    assert.equal((await client.status({ id })).model, 'stability-ai/sdxl');
    const { id: chosen } = await client.generate({ prompt: 'whatever the tier picks' });
    assert.equal((await client.status({ id: chosen })).model, 'black-forest-labs/flux-schnell');
  });

  it('follows a tier change: what was refused is taken', async () => {
    const { tenantId, client } = await tenantOn('standard');
    await rejects(client.generate({ prompt: 'dev', model: 'black-forest-labs/flux-dev' }), 'FORBIDDEN');
    await updateTenant(kiln.app.database.db, tenantId, { tier: 'pro' });
    const { id } = await client.generate({ prompt: 'dev', model: 'black-forest-labs/flux-dev' });
    assert.equal((await client.status({ id })).model, 'black-forest-labs/flux-dev');
  });
});
