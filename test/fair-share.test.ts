// The provider's create budget is shared fairly among tenants with work waiting: the
// dispatcher (jobs/dispatch/) hands queued generations to the create phase at the budget's
// pace, a lane per tenant, in order within a lane. Two worker processes work one database.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';
import { startWorkerProcess, type WorkerProcess } from './support/worker-process.ts';

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

      const first = await small.client.waitFor(smallIds[0]!, { timeoutMs: 60_000 });
      assert.equal(first.state, 'succeeded');
      const waitedMs = new Date(first.startedAt!).getTime() - new Date(first.createdAt).getTime();
      // Alternating with A at 2 creates/s, B's first waits about one slot; far from A's 200 s.
      assert.ok(waitedMs < 5_000, `the small tenant's first generation started after ${waitedMs} ms`);
      const rest = await Promise.all(smallIds.map((id) => small.client.waitFor(id, { timeoutMs: 60_000 })));
      assert.deepEqual(rest.map((generation) => generation.state), smallIds.map(() => 'succeeded'));

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
});
