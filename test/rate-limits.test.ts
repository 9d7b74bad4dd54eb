// Request rate limits: a tenant (and each of its subjects, when it limits them) may send so many
// requests a minute, a batch counting its items. Over the limit: TOO_MANY_REQUESTS with the time
// to retry, in the error's data and as Retry-After on HTTP, and nothing written. The budgets
// live in PostgreSQL, so they hold across API processes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKilnClient } from '../client-sdk/index.ts';
import { updateTenant, type TenantChanges } from '../db/tenants.ts';
import { fieldsOf, rejects, retryAfterOf } from './support/rejections.ts';
import { createTestDatabase, startKiln, type TestKiln } from './support/kiln.ts';

const item = (prompt: string, subject?: string) => ({ prompt, platforms: ['thumbnail' as const], ...(subject ? { subject } : {}) });

describe('request rate limits', () => {
  let kiln: TestKiln;
  let other: TestKiln;
  before(async () => {
    const databaseUrl = await createTestDatabase();
    // Two API processes on one database, no limits cached: a change applies at once.
    kiln = await startKiln({ databaseUrl, env: { KILN_ROLE: 'api', KILN_AUTH_CACHE_MS: '0' } });
    other = await startKiln({ databaseUrl, env: { KILN_ROLE: 'api', KILN_AUTH_CACHE_MS: '0' } });
  });
  after(async () => {
    await other.stop();
    await kiln.stop();
  });

  /** A new tenant with these limits (a rate this slow refills nothing while a test runs). */
  async function tenantWith(limits: TenantChanges) {
    const tenant = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, tenant.tenantId, limits);
    return tenant;
  }

  it('refuses the request past the burst with the time to retry, and writes nothing', async () => {
    const { client } = await tenantWith({ requestsPerMinute: 6, requestBurst: 3 }); // one every 10 s
    for (let call = 0; call < 3; call += 1) await client.generate(item(`within ${call}`));
    const before = await kiln.countGenerations();
    const refused = await rejects(client.generate(item('one too many')), 'TOO_MANY_REQUESTS', /rate limit: this tenant may send 6 requests a minute \(bursts of 3\); retry in 10 s/);
    assert.equal(retryAfterOf(refused), 10);
    assert.equal(await kiln.countGenerations(), before, 'nothing written');
  });

  it('says Retry-After on HTTP with status 429', async () => {
    const { apiKey } = await tenantWith({ requestsPerMinute: 6, requestBurst: 1 });
    const call = () =>
      fetch(`${kiln.url}/trpc/generate`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(item('over http')) });
    assert.equal((await call()).status, 200);
    const refused = await call();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '10');
  });

  it('counts a batch as its items, all or none, and says how to split one larger than the burst', async () => {
    const { client } = await tenantWith({ requestsPerMinute: 6, requestBurst: 5 });
    await client.batch({ items: [item('a'), item('b'), item('c')] });
    const before = await kiln.countGenerations();
    await rejects(client.batch({ items: [item('d'), item('e'), item('f')] }), 'TOO_MANY_REQUESTS', /retry in 10 s/);
    assert.equal(await kiln.countGenerations(), before, 'no part of the refused batch was written');
    await client.batch({ items: [item('d'), item('e')] }); // the two that are left
    const tooBig = await rejects(client.batch({ items: Array.from({ length: 6 }, (_, index) => item(`big ${index}`)) }), 'BAD_REQUEST', /6 requests at once are more than this tenant may send together \(5\); split them into batches of at most 5/);
    assert.deepEqual(fieldsOf(tooBig), { items: ['at most 5 at once for this tenant'] });
  });

  it('holds exactly across two API processes under a concurrent burst', async () => {
    const tenant = await tenantWith({ requestsPerMinute: 0.1, requestBurst: 20 });
    const second = createKilnClient({ url: other.url, apiKey: tenant.apiKey }); // the same key, through the other API process
    try {
      const calls = Array.from({ length: 100 }, (_, index) => (index % 2 === 0 ? tenant.client : second).generate(item(`burst ${index}`)));
      const outcomes = await Promise.allSettled(calls);
      const admitted = outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
      assert.equal(admitted, 20, 'the burst, not one more');
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') assert.equal((outcome.reason as { data?: { code?: string } }).data?.code, 'TOO_MANY_REQUESTS');
      }
      const rows = await kiln.app.database.db.selectFrom('generations').select((eb) => eb.fn.countAll<string>().as('n')).where('tenant_id', '=', tenant.tenantId).executeTakeFirstOrThrow();
      assert.equal(Number(rows.n), 20);
    } finally {
      second.close();
    }
  });

  it('limits each subject of a tenant that asks for it, apart from its other subjects', async () => {
    const { client } = await tenantWith({ subjectRequestsPerMinute: 1, subjectRequestBurst: 2 });
    await client.generate(item('first', 'user-1'));
    await client.generate(item('second', 'user-1'));
    await rejects(client.generate(item('third', 'user-1')), 'TOO_MANY_REQUESTS', /rate limit: subject "user-1" may send 1 requests a minute \(bursts of 2\); retry in 60 s/);
    await client.generate(item('another user', 'user-2'));
    await client.generate(item('no subject named')); // the tenant's own limit only
    // A batch counts each subject's items against that subject.
    await rejects(client.batch({ items: [item('x', 'user-2'), item('y', 'user-2')] }), 'TOO_MANY_REQUESTS', /subject "user-2"/);
    await client.batch({ items: [item('x', 'user-3'), item('y', 'user-4')], subject: 'user-5' });
  });

  it('gives back what one budget took when another refused the same requests', async () => {
    const { client } = await tenantWith({ requestsPerMinute: 6, requestBurst: 2, subjectRequestsPerMinute: 1, subjectRequestBurst: 1 });
    await client.generate(item('takes the subject', 'user-1'));
    await rejects(client.generate(item('subject refuses', 'user-1')), 'TOO_MANY_REQUESTS', /subject "user-1"/);
    // The tenant's second request is still there: the refused one took none of it.
    await client.generate(item('still fits', 'user-2'));
    await rejects(client.generate(item('now the tenant refuses', 'user-3')), 'TOO_MANY_REQUESTS', /this tenant/);
  });

  it('uses the tier\'s limits for a tenant without its own', async () => {
    const { tenantId, client } = await kiln.newTenant();
    await updateTenant(kiln.app.database.db, tenantId, { tier: 'free' }); // bursts of 500
    await rejects(client.batch({ items: Array.from({ length: 501 }, (_, index) => item(`free ${index}`)) }), 'BAD_REQUEST', /more than this tenant may send together \(500\)/);
    await client.batch({ items: Array.from({ length: 500 }, (_, index) => item(`free ${index}`)) });
  });
});
