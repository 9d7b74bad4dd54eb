// The provider's create budget is shared fairly among tenants with work waiting: the
// dispatcher (jobs/dispatch/) hands queued generations to the create phase at the budget's
// pace, a lane per tenant (or per subject of a tenant shared by subject), in order within a lane. Two worker processes work one database.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { updateTenant } from '../db/tenants.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';
import { startWorkerProcess, type WorkerProcess } from './support/worker-process.ts';

/** Kiln and its provider at 1,200 creates a minute, no cap in the way: a 10-second window holds about 200 dispatches. */
async function startAtWindowPace() {
  const simulator = createSimulator({ latencyMs: { min: 20, max: 60 }, createsPerMinute: 1200, readsPerMinute: 60_000, burst: 40 });
  await simulator.start();
  const kiln = await startKiln({
    env: {
      ...standaloneProviderEnv(simulator),
      KILN_PROVIDER_CREATES_PER_MINUTE: '1200',
      KILN_PROVIDER_CREATE_BURST: '20',
      KILN_WORKER_CONCURRENCY: '32',
      KILN_TENANT_IN_PROGRESS_CAP: '1000',
    },
  });
  const stop = async () => {
    await kiln.stop();
    await simulator.stop();
  };
  return { kiln, stop };
}

/** Generations dispatched in the next `ms`, counted by tenant and subject. */
async function dispatchesDuring(db: Kysely<Database>, ms: number): Promise<{ tenantId: string; subject: string | null; count: number }[]> {
  const from = new Date();
  await sleep(ms);
  const rows = await db
    .selectFrom('generations')
    .select(['tenant_id', 'subject', (eb) => eb.fn.countAll<string>().as('count')])
    .where('dispatched_at', '>', from)
    .where('dispatched_at', '<=', new Date())
    .groupBy(['tenant_id', 'subject'])
    .execute();
  return rows.map((row) => ({ tenantId: row.tenant_id, subject: row.subject, count: Number(row.count) }));
}

describe('fair share of the provider create budget', () => {
  it('starts a small tenant within seconds behind a large backlog, in order, without 429s or deferrals', async () => {
    // The provider takes 120 creates a minute with a burst of 20; Kiln's budget is the same
    // rate with a burst of 10, so even a burst's start fits.
    const simulator = createSimulator({ latencyMs: { min: 20, max: 60 }, createsPerMinute: 120, readsPerMinute: 60_000, burst: 20 });
    await simulator.start();
    const shared = {
      ...standaloneProviderEnv(simulator),
      REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret,
      KILN_PROVIDER_CREATES_PER_MINUTE: '120',
      KILN_PROVIDER_CREATE_BURST: '10',
    };
    const api = await startKiln({ env: { ...shared, KILN_ROLE: 'api' } });
    const workerEnv = { ...shared, DATABASE_URL: api.databaseUrl, KILN_PUBLIC_URL: api.url, KILN_SHUTDOWN_GRACE_MS: '2000' };
    const workers: WorkerProcess[] = [];
    try {
      for (let index = 0; index < 2; index += 1) workers.push(await startWorkerProcess(workerEnv));
      await Promise.all(workers.map((worker) => worker.ready));
      const db = api.app.database.db;

      // Tenant A queues 400 (over three minutes of budget), then B queues 5.
      const big: string[] = [];
      for (let part = 0; part < 4; part += 1) {
        const { ids } = await api.client.batch({ items: Array.from({ length: 100 }, (_, index) => ({ prompt: `backlog ${part}-${index}`, platforms: ['thumbnail'] as const })) });
        big.push(...ids);
      }
      await sleep(1000); // A's burst is out and its backlog is being dispatched
      const small = await api.newTenant('small');
      const { ids: smallIds } = await small.client.batch({ items: Array.from({ length: 5 }, (_, index) => ({ prompt: `small ${index}`, platforms: ['thumbnail'] as const })) });

      // The estimates, read now, of B's last and of one deep in A's backlog.
      const askedAt = Date.now();
      const [smallLast, deep] = await Promise.all([small.client.status({ id: smallIds[4]! }), api.client.status({ id: big[40]! })]);

      const first = await small.client.waitFor(smallIds[0]!, { timeoutMs: 60_000 });
      assert.equal(first.state, 'succeeded');
      const waitedMs = new Date(first.startedAt!).getTime() - new Date(first.createdAt).getTime();
      // Alternating with A at 2 creates/s, B's first waits about one slot; far from A's 200 s.
      assert.ok(waitedMs < 5_000, `the small tenant's first generation started after ${waitedMs} ms`);
      const rest = await Promise.all(smallIds.map((id) => small.client.waitFor(id, { timeoutMs: 60_000 })));
      assert.deepEqual(rest.map((generation) => generation.state), smallIds.map(() => 'succeeded'));
      const deepDone = await api.client.waitFor(big[40]!, { timeoutMs: 90_000 });
      // Each started within 2× of when its estimate said (with a second's slack for pickup).
      for (const [estimate, done] of [[smallLast, rest[4]!], [deep, deepDone]] as const) {
        assert.ok(estimate.queue?.estimatedStartAt, 'an estimate was given');
        const estimatedMs = new Date(estimate.queue.estimatedStartAt).getTime() - askedAt;
        const actualMs = new Date(done.startedAt!).getTime() - askedAt;
        assert.ok(actualMs <= 2 * estimatedMs + 1000 && estimatedMs <= 2 * actualMs + 1000, `estimated ${estimatedMs} ms, started after ${actualMs} ms (position ${estimate.queue.position})`);
      }

      // Order within A's lane (equal priority): dispatched oldest first.
      const dispatched = await db
        .selectFrom('generations')
        .select(['id'])
        .where('tenant_id', '=', api.tenantId)
        .where('dispatched_at', 'is not', null)
        .orderBy('dispatched_at')
        .orderBy('id')
        .execute();
      assert.ok(dispatched.length >= 10);
      assert.deepEqual(dispatched.map((row) => row.id), big.slice(0, dispatched.length), 'A was dispatched in the order it was queued');

      // No create met a booked budget, and the provider never said 429.
      const deferred = await db.selectFrom('generation_events').select(['data']).where('stage', '=', 'deferred').execute();
      assert.deepEqual(deferred, [], 'nothing was deferred');
      assert.equal(simulator.stats().throttled, 0, 'no 429');
      // Both processes sent creates.
      const started = await db.selectFrom('generation_events').select(['data']).where('stage', '=', 'started').execute();
      const byWorker = new Set(started.map((event) => String((event.data as { worker?: string }).worker)));
      assert.equal(byWorker.size, 2, 'both worker processes took work');
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
      await api.stop();
      await simulator.stop();
    }
  });

  it('gives each tier its weight of the budget over a window', async () => {
    const { kiln, stop } = await startAtWindowPace();
    try {
      const db = kiln.app.database.db;
      const tiers = ['free', 'standard', 'pro'] as const;
      const tenants = await Promise.all(tiers.map((tier) => kiln.newTenant(`tier-${tier}`)));
      for (const [index, tier] of tiers.entries()) {
        await db.updateTable('tenants').set({ tier }).where('id', '=', tenants[index]!.tenantId).execute();
      }
      // All three queue more than the window can serve, in one go each.
      await Promise.all(
        tenants.map((tenant, index) =>
          tenant.client.batch({ items: Array.from({ length: 400 }, (_, item) => ({ prompt: `${tiers[index]} ${item}`, platforms: ['thumbnail'] as const })) }),
        ),
      );
      const counts = await dispatchesDuring(db, 10_000);
      const dispatched = tenants.map((tenant) => counts.filter((row) => row.tenantId === tenant.tenantId).reduce((sum, row) => sum + row.count, 0));
      const total = dispatched.reduce((sum, count) => sum + count, 0);
      assert.ok(total >= 100, `dispatches in the window: ${total}`);
      const weights = [1, 2, 4];
      for (const [index, count] of dispatched.entries()) {
        const share = count / total;
        const expected = weights[index]! / 7;
        assert.ok(Math.abs(share - expected) / expected < 0.05, `${tiers[index]}: ${count} of ${total} (share ${share.toFixed(3)}, expected ${expected.toFixed(3)}); all: ${dispatched}`);
      }
    } finally {
      await stop();
    }
  });

  it('divides a tenant shared by subject among its subjects, and gives other tenants their whole turn', async () => {
    // Tenant "stores" shares by subject, tenant "single" by tenant; both are of one tier.
    const { kiln, stop } = await startAtWindowPace();
    try {
      const db = kiln.app.database.db;
      const stores = await kiln.newTenant('stores');
      const single = await kiln.newTenant('single');
      await updateTenant(db, stores.tenantId, { shareBy: 'subject' });
      const items = (count: number, subject?: string) =>
        Array.from({ length: count }, (_, index) => ({ prompt: `${subject ?? 'single'} ${index}`, platforms: ['thumbnail' as const], ...(subject ? { subject } : {}) }));
      // One store queues far more than the window can serve; two others queue a little less each.
      await Promise.all([
        stores.client.batch({ items: items(400, 'store-big') }),
        stores.client.batch({ items: items(150, 'store-a') }),
        stores.client.batch({ items: items(150, 'store-b') }),
        single.client.batch({ items: items(400) }),
      ]);
      const rows = await dispatchesDuring(db, 10_000);
      const count = (tenantId: string, subject: string | null) => rows.find((row) => row.tenantId === tenantId && row.subject === subject)?.count ?? 0;
      const perStore = ['store-big', 'store-a', 'store-b'].map((subject) => count(stores.tenantId, subject));
      const storesTotal = perStore.reduce((sum, value) => sum + value, 0);
      const singleTotal = count(single.tenantId, null);
      assert.ok(storesTotal + singleTotal >= 100, `dispatches in the window: ${storesTotal + singleTotal}`);
      // The two tenants (same tier) get a half each: sharing by subject does not multiply a tenant's turn.
      const storesShare = storesTotal / (storesTotal + singleTotal);
      assert.ok(Math.abs(storesShare - 0.5) < 0.05, `stores: ${storesTotal}, single: ${singleTotal}`);
      // Within the tenant, each store a third: the big one does not monopolise it.
      for (const [index, value] of perStore.entries()) {
        assert.ok(Math.abs(value / storesTotal - 1 / 3) < 0.05, `store ${index}: ${value} of ${storesTotal} (${perStore})`);
      }
    } finally {
      await stop();
    }
  });

  it('holds a tenant at its cap on work in progress while another, with a cap of its own, goes on', async () => {
    // Slow predictions, so work in progress piles up; the default cap is 3, the other tenant's own 6.
    const simulator = createSimulator({ latencyMs: { min: 1500, max: 2000 }, createsPerMinute: 6000, readsPerMinute: 60_000 });
    await simulator.start();
    const kiln = await startKiln({
      env: { ...standaloneProviderEnv(simulator), KILN_PROVIDER_CREATES_PER_MINUTE: '6000', KILN_PROVIDER_CREATE_BURST: '50', KILN_TENANT_IN_PROGRESS_CAP: '3' },
    });
    try {
      const other = await kiln.newTenant('other');
      await updateTenant(kiln.app.database.db, other.tenantId, { inProgressCap: 6 });
      const { ids } = await kiln.client.batch({ items: Array.from({ length: 9 }, (_, index) => ({ prompt: `capped ${index}`, platforms: ['thumbnail'] as const })) });
      const { ids: otherIds } = await other.client.batch({ items: Array.from({ length: 6 }, (_, index) => ({ prompt: `other ${index}`, platforms: ['thumbnail'] as const })) });
      const done = await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 90_000 })));
      const otherDone = await Promise.all(otherIds.map((id) => other.client.waitFor(id, { timeoutMs: 90_000 })));
      assert.deepEqual([...done, ...otherDone].map((generation) => generation.state), [...ids, ...otherIds].map(() => 'succeeded'));
      // At no moment were more than three of the capped tenant's generations between start and finish.
      const spans = done.map((generation) => [new Date(generation.startedAt!).getTime(), new Date(generation.finishedAt!).getTime()] as const);
      const most = Math.max(...spans.map(([start]) => spans.filter(([from, to]) => from <= start && start < to).length));
      assert.ok(most <= 3, `${most} in progress at once`);
      // The other tenant was held back neither by the capped one nor by the default: its six all started at once.
      const otherStarts = otherDone.map((generation) => new Date(generation.startedAt!).getTime());
      assert.ok(Math.max(...otherStarts) - Math.min(...otherStarts) < 1500, 'the other tenant ran side by side');
    } finally {
      await kiln.stop();
      await simulator.stop();
    }
  });

  it('ages priority: low-priority work starts within a bounded time under a stream of higher-priority work', async () => {
    // 10 creates/s; a stream of priority-10 work at 20/s outpaces it. Each priority point is worth
    // 0.25 s of waiting, so the priority −10 generation goes before any priority-10 one queued
    // more than 20 × 0.25 = 5 s after it.
    const simulator = createSimulator({ latencyMs: { min: 20, max: 60 }, createsPerMinute: 600, readsPerMinute: 60_000 });
    await simulator.start();
    const kiln = await startKiln({
      env: { ...standaloneProviderEnv(simulator), KILN_PROVIDER_CREATES_PER_MINUTE: '600', KILN_PROVIDER_CREATE_BURST: '10', KILN_PRIORITY_AGING_SECONDS: '0.25' },
    });
    try {
      const high = (count: number, from: number) =>
        kiln.client.batch({ items: Array.from({ length: count }, (_, index) => ({ prompt: `high ${from + index}`, priority: 10, platforms: ['thumbnail'] as const })) });
      await high(30, 0);
      const low = await kiln.client.generate({ prompt: 'low', priority: -10, platforms: ['thumbnail'] });
      const lowQueuedAt = Date.now();
      let lowStarted = false;
      for (let round = 0; round < 30 && !lowStarted; round += 1) {
        await high(10, 30 + round * 10);
        await sleep(500);
        lowStarted = (await kiln.client.status({ id: low.id })).startedAt !== null;
      }
      const done = await kiln.client.waitFor(low.id, { timeoutMs: 60_000 });
      assert.equal(done.state, 'succeeded');
      const waitedMs = new Date(done.startedAt!).getTime() - lowQueuedAt;
      // Without aging it would wait for the stream to end; with it, about 5 s plus the work ahead by then.
      assert.ok(lowStarted, `the low-priority generation started while the stream went on (after ${waitedMs} ms)`);
      // No priority-10 generation queued well after the aging bound went before it.
      const overtook = await kiln.app.database.db
        .selectFrom('generations')
        .select(['id'])
        .where('tenant_id', '=', kiln.tenantId)
        .where('priority', '=', 10)
        .where('created_at', '>', new Date(new Date(done.createdAt).getTime() + 5_000 + 1_000))
        .where('started_at', '<', new Date(done.startedAt!))
        .execute();
      assert.deepEqual(overtook, [], 'priority-10 work queued after the bound did not go first');
    } finally {
      await kiln.stop();
      await simulator.stop();
    }
  });
});
