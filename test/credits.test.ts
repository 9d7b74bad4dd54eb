// Credits: a tenant granted credit has a balance and a ledger of every movement. A generation
// reserves its price when queued, is charged on success and refunded on failure or cancel; the
// balance never goes below zero and stays exact under concurrency; too little credit is refused
// before anything is queued. The provider's cost of each generation is recorded, and a tenant
// reads its spend by model and day.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { grantCredits, toMicroUsd } from '../db/credits.ts';
import { updateTenant } from '../db/tenants.ts';
import { rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const FLUX_SCHNELL = 3_000; // $0.003 an image, in micro-dollars

describe('credits', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0', KILN_WORKER_CONCURRENCY: '32' } });
  });
  after(() => kiln.stop());

  async function meteredTenant(usd: number) {
    const tenant = await kiln.newTenant();
    // Far above what these tests send: the rate limits are not what is tested here.
    await updateTenant(kiln.app.database.db, tenant.tenantId, { requestsPerMinute: 1_000_000, requestBurst: 10_000 });
    await grantCredits(kiln.app.database.db, tenant.tenantId, toMicroUsd(usd), 'test');
    return tenant;
  }

  /** The balance, the ledger's sums, and the reservations of generations that have not ended. */
  async function books(tenantId: string) {
    const db = kiln.app.database.db;
    const balance = await db.selectFrom('credit_balances').select(['available', 'held']).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    const ledger = await db
      .selectFrom('credit_ledger')
      .select((eb) => [eb.fn.sum<string>('available_delta').as('available'), eb.fn.sum<string>('held_delta').as('held'), eb.fn.sum<string>('spent').as('spent')])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const open = await db
      .selectFrom('generations')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<string>('reserved'), eb.lit(0)).as('held'))
      .where('tenant_id', '=', tenantId)
      .where('state', 'in', ['queued', 'running'])
      .executeTakeFirstOrThrow();
    return {
      available: Number(balance.available),
      held: Number(balance.held),
      ledgerAvailable: Number(ledger.available),
      ledgerHeld: Number(ledger.held),
      spent: Number(ledger.spent),
      openReservations: Number(open.held),
    };
  }

  it('reserves at submit, charges on success, refunds on failure, and reports spend by model and day', async () => {
    const { tenantId, client } = await meteredTenant(1);
    const { id: ok } = await client.generate({ prompt: 'paid for', platforms: ['thumbnail'] });
    const { id: bad } = await client.generate({ prompt: 'fails [sim:fail]', platforms: ['thumbnail'] });
    const held = await books(tenantId);
    assert.equal(held.available + held.held, 1_000_000, 'reserving moves credit from available to held');
    await Promise.all([client.waitFor(ok), client.waitFor(bad)]);
    const settled = await books(tenantId);
    assert.deepEqual(settled, { available: 1_000_000 - FLUX_SCHNELL, held: 0, ledgerAvailable: 1_000_000 - FLUX_SCHNELL, ledgerHeld: 0, spent: FLUX_SCHNELL, openReservations: 0 });
    const kinds = await kiln.app.database.db.selectFrom('credit_ledger').select(['kind', 'generation_id']).where('tenant_id', '=', tenantId).orderBy('id').execute();
    assert.deepEqual(kinds.filter((row) => row.generation_id === ok).map((row) => row.kind), ['reserve', 'charge']);
    assert.deepEqual(kinds.filter((row) => row.generation_id === bad).map((row) => row.kind), ['reserve', 'refund']);

    const credits = await client.credits();
    assert.equal(credits.metered, true);
    assert.equal(credits.availableUsd, 0.997);
    assert.equal(credits.heldUsd, 0);
    assert.deepEqual(
      credits.usage.map(({ day, ...rest }) => ({ rest, today: day === new Date().toISOString().slice(0, 10) })),
      [{ rest: { model: 'black-forest-labs/flux-schnell', generations: 2, succeeded: 1, fromCache: 0, joined: 0, chargedUsd: 0.003, providerCostUsd: 0.003 }, today: true }],
    );
  });

  it('refunds a canceled generation', async () => {
    const { tenantId, client } = await meteredTenant(1);
    const { id } = await client.generate({ prompt: 'changed my mind [sim:slow=20000]', platforms: ['thumbnail'] });
    await client.cancel({ id });
    await client.waitFor(id);
    assert.deepEqual(await books(tenantId), { available: 1_000_000, held: 0, ledgerAvailable: 1_000_000, ledgerHeld: 0, spent: 0, openReservations: 0 });
  });

  it('refuses what the balance cannot cover before anything is queued', async () => {
    const { tenantId, client } = await meteredTenant(0.005); // one flux-schnell image, not two
    await client.generate({ prompt: 'the one that fits', platforms: ['thumbnail'] });
    const before = await kiln.countGenerations();
    await rejects(client.generate({ prompt: 'one too many', platforms: ['thumbnail'] }), 'PAYMENT_REQUIRED', /not enough credit: this generation reserves \$0\.003, and \$0\.002 is available; nothing was queued/);
    await rejects(client.batch({ items: [{ prompt: 'a' }, { prompt: 'b' }] }), 'PAYMENT_REQUIRED', /these 2 generations reserve \$0\.006/);
    assert.equal(await kiln.countGenerations(), before, 'nothing written');
    assert.equal((await books(tenantId)).available, 2_000);
  });

  it('stays exact after 500 concurrent generations with failures and cancels', async () => {
    const { tenantId, client } = await meteredTenant(1.2); // room for 400 of the 500
    const outcomes = await Promise.allSettled(
      Array.from({ length: 500 }, (_, index) => client.generate({ prompt: `busy ${index}${index % 7 === 0 ? ' [sim:fail]' : ''}`, platforms: ['thumbnail'] })),
    );
    const accepted = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value.id] : []));
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    assert.equal(accepted.length, 400, 'exactly what the credit covers is accepted');
    for (const outcome of refused) assert.equal((outcome.reason as { data?: { code?: string } }).data?.code, 'PAYMENT_REQUIRED');
    await Promise.all(accepted.filter((_, index) => index % 5 === 0).map((id) => client.cancel({ id }).catch(() => undefined)));
    // All at once: the client waits in turns within the server's 100 subscriptions per WebSocket.
    const done = await Promise.all(accepted.map((id) => client.waitFor(id, { timeoutMs: 120_000 })));
    const succeeded = done.filter((generation) => generation.state === 'succeeded').length;
    assert.ok(succeeded > 0 && succeeded < 400, `${succeeded} succeeded; the rest failed or were canceled`);
    assert.deepEqual(await books(tenantId), {
      available: 1_200_000 - succeeded * FLUX_SCHNELL,
      held: 0,
      ledgerAvailable: 1_200_000 - succeeded * FLUX_SCHNELL,
      ledgerHeld: 0,
      spent: succeeded * FLUX_SCHNELL,
      openReservations: 0,
    });
  });

  it('charges a GPU-second model its time, never more than it reserved, and records the provider cost', async () => {
    const { tenantId, client } = await meteredTenant(1);
    await updateTenant(kiln.app.database.db, tenantId, { tier: 'pro' });
    const { id } = await client.generate({ prompt: 'billed by the second [sim:slow=1500]', model: 'stability-ai/sdxl', platforms: ['thumbnail'] });
    await client.waitFor(id);
    const row = await kiln.app.database.db.selectFrom('generations').select(['predict_seconds', 'provider_cost', 'reserved']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.ok(row.predict_seconds !== null && row.predict_seconds >= 1.4 && row.predict_seconds < 10, `predict time ${row.predict_seconds}`);
    assert.equal(Number(row.reserved), 9_750, '10 s of L40S reserved');
    assert.equal(Number(row.provider_cost), Math.ceil(row.predict_seconds * 975));
    assert.equal((await books(tenantId)).spent, Number(row.provider_cost));
  });

  it('leaves a tenant that was never granted credit unmetered', async () => {
    const { client } = await kiln.newTenant();
    const { id } = await client.generate({ prompt: 'free of charge', platforms: ['thumbnail'] });
    await client.waitFor(id);
    const credits = await client.credits({ days: 1 });
    assert.equal(credits.metered, false);
    assert.deepEqual(credits.usage.map((row) => [row.chargedUsd, row.providerCostUsd]), [[0, 0.003]], 'the provider cost is recorded all the same');
    await rejects(client.credits({ days: 91 }), 'BAD_REQUEST', /days must be between 1 and 90/);
  });
});
