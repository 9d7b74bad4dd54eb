// The operator's overview: every tenant's work and the provider's state in one read — what is
// in progress, what ended minute by minute, the budgets beside their limits, the breaker, and
// each tenant's share of the provider. Only the admin token reaches it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKilnClient, type KilnClient } from '../client-sdk/index.ts';
import { rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const ADMIN_TOKEN = 'admin-token-for-the-operator-overview-01';

describe('admin.ops.overview', () => {
  let kiln: TestKiln;
  let admin: KilnClient;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ADMIN_TOKEN: ADMIN_TOKEN } });
    admin = createKilnClient({ url: kiln.url, apiKey: ADMIN_TOKEN });
  });
  after(async () => {
    admin.close();
    await kiln.stop();
  });

  it('shows ended work by minute, each tenant\'s share, the budgets with their limits and the breaker', async () => {
    const other = await kiln.newTenant('second-tenant');
    const mine = await Promise.all([1, 2, 3].map((n) => kiln.client.generate({ prompt: `overview ${n}`, platforms: ['thumbnail'], cache: 'off' })));
    const theirs = await other.client.generate({ prompt: 'overview other', platforms: ['thumbnail'], cache: 'off' });
    await Promise.all([...mine.map(({ id }) => kiln.client.waitFor(id, { timeoutMs: 60_000 })), other.client.waitFor(theirs.id, { timeoutMs: 60_000 })]);

    const overview = await admin.trpc.admin.ops.overview.query();
    assert.equal(overview.throughput.length, overview.windowMinutes);
    assert.equal(overview.throughput.reduce((sum, minute) => sum + minute.succeeded, 0), 4);
    assert.deepEqual(overview.generations, { waiting: 0, dispatched: 0, running: 0, atProvider: 0 });
    assert.equal(overview.provider.breaker, 'closed');
    const create = overview.provider.budgets.find((budget) => budget.name.endsWith(':create'));
    assert.ok(create && create.perMinute > 0 && create.granted >= 4, JSON.stringify(overview.provider.budgets));
    assert.ok(overview.queues.some((depth) => depth.queue === 'kiln-dispatch'));

    const shares = Object.fromEntries(overview.tenants.map((tenant) => [tenant.tenantId, tenant]));
    assert.equal(shares[kiln.tenantId]?.endedRecently, 3);
    assert.equal(shares[kiln.tenantId]?.share, 0.75);
    assert.equal(shares[other.tenantId]?.name, 'second-tenant');
    assert.equal(shares[other.tenantId]?.share, 0.25);
  });

  it('is the operator\'s: a tenant\'s key is refused', async () => {
    await rejects(kiln.client.trpc.admin.ops.overview.query(), 'FORBIDDEN');
  });
});
