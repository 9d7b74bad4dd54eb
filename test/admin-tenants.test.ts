// The operator changes tenants through admin procedures as through the CLI: tier (and so the
// models it may use), share-by, cap and request limits, and credit. A tenant's key reaches none of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKilnClient, type KilnClient } from '../client-sdk/index.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const ADMIN_TOKEN = 'admin-token-for-the-tenant-settings-0123';

describe('admin.tenants', () => {
  let kiln: TestKiln;
  let admin: KilnClient;
  before(async () => {
    // No auth cache: a changed tier shows on the tenant's very next call.
    kiln = await startKiln({ env: { KILN_ROLE: 'api', KILN_ADMIN_TOKEN: ADMIN_TOKEN, KILN_AUTH_CACHE_MS: '0' } });
    admin = createKilnClient({ url: kiln.url, apiKey: ADMIN_TOKEN });
  });
  after(async () => {
    admin.close();
    await kiln.stop();
  });

  it('changes a tenant\'s tier and limits, and the tenant\'s next call follows them', async () => {
    const { client } = await kiln.newTenant('moving-up');
    await rejects(client.generate({ prompt: 'fine', model: 'black-forest-labs/flux-dev' }), 'FORBIDDEN');
    const set = await admin.trpc.admin.tenants.set.mutate({ tenant: 'moving-up', tier: 'pro', requestsPerMinute: 6, requestBurst: 1 });
    assert.deepEqual([set.tier, set.requestsPerMinute, set.requestBurst, set.inProgressCap], ['pro', 6, 1, null]);
    await client.generate({ prompt: 'fine', model: 'black-forest-labs/flux-dev' });
    await rejects(client.generate({ prompt: 'again' }), 'TOO_MANY_REQUESTS', /6 requests a minute/);
    const back = await admin.trpc.admin.tenants.set.mutate({ tenant: 'moving-up', requestsPerMinute: null, requestBurst: null });
    assert.deepEqual([back.tier, back.requestsPerMinute, back.requestBurst], ['pro', null, null], 'what was not given stays');
  });

  it('grants credit, lists tenants with it, and refuses what is wrong with its field', async () => {
    const { tenantId, client } = await kiln.newTenant('granted-co');
    const granted = await admin.trpc.admin.tenants.grant.mutate({ tenant: tenantId, usd: 5, note: 'trial' });
    assert.deepEqual(granted.credit, { availableUsd: 5, heldUsd: 0 });
    assert.equal((await client.credits()).availableUsd, 5);
    const listed = await admin.trpc.admin.tenants.list.query();
    assert.deepEqual(listed.find((tenant) => tenant.id === tenantId)?.credit, { availableUsd: 5, heldUsd: 0 });
    assert.equal(listed.find((tenant) => tenant.id === kiln.tenantId)?.credit, null, 'a tenant never granted credit is not metered');

    const bad = await rejects(admin.trpc.admin.tenants.grant.mutate({ tenant: 'granted-co', usd: -1 }), 'BAD_REQUEST', /usd must be above 0/);
    assert.deepEqual(Object.keys(fieldsOf(bad)), ['usd']);
    const badTier = await rejects(admin.trpc.admin.tenants.set.mutate({ tenant: 'granted-co', tier: 'gold' as 'pro' }), 'BAD_REQUEST', /tier must be one of: free, standard, pro/);
    assert.deepEqual(Object.keys(fieldsOf(badTier)), ['tier']);
    await rejects(admin.trpc.admin.tenants.set.mutate({ tenant: 'granted-co', requestBurst: 2.5 }), 'BAD_REQUEST', /requestBurst must be a whole number/);
    await rejects(admin.trpc.admin.tenants.grant.mutate({ tenant: 'nobody-co', usd: 1 }), 'NOT_FOUND', /tenant nobody-co was not found/);
    assert.equal((await client.credits()).availableUsd, 5, 'nothing refused changed the balance');
  });

  it('is the operator\'s alone: a tenant key is refused, for its own tenant too', async () => {
    const { client } = await kiln.newTenant('ambitious-co');
    await rejects(client.trpc.admin.tenants.grant.mutate({ tenant: 'ambitious-co', usd: 1000 }), 'FORBIDDEN');
    await rejects(client.trpc.admin.tenants.set.mutate({ tenant: 'ambitious-co', tier: 'pro' }), 'FORBIDDEN');
    await rejects(client.trpc.admin.tenants.list.query(), 'FORBIDDEN');
    assert.equal((await client.credits()).metered, false);
  });
});
