// The provider's rate limits are one budget for every worker process, kept in PostgreSQL:
// together they never go over it, and a 429 pauses it for everyone without failing work.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createKilnClient } from '../client-sdk/index.ts';
import { budgetStates } from '../db/rate-limits.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';

const FINAL = ['succeeded', 'failed', 'canceled'];

describe('provider rate limit', () => {
  it('is shared by every worker process: a provider limited exactly like our budget never answers 429', async () => {
    // The provider allows one create per second (and, as Replicate does, a short burst: two);
    // our budget is one per second with no burst. Two Kiln apps on one database work the queue;
    // the first works alone at first; then the second starts, the first stops, and the second
    // (its dispatcher taking over) finishes the work on the same budget.
    const simulator = createSimulator({ latencyMs: { min: 20, max: 50 }, createsPerMinute: 60, readsPerMinute: 60_000, burst: 2 });
    await simulator.start();
    const env = {
      ...standaloneProviderEnv(simulator),
      KILN_PROVIDER_CREATES_PER_MINUTE: '60',
      KILN_PROVIDER_CREATE_BURST: '1',
    };
    const first = await startKiln({ env });
    let second: Awaited<ReturnType<typeof startKiln>> | undefined;
    try {
      const { ids } = await first.client.batch({ items: Array.from({ length: 6 }, (_, index) => ({ prompt: `budget ${index}`, platforms: ['thumbnail'] as const })) });
      await first.client.waitFor(ids[1]!, { timeoutMs: 60_000 });
      second = await startKiln({ env, databaseUrl: first.databaseUrl });
      await first.stop();
      const client = createKilnClient({ url: second.url, apiKey: first.apiKey }); // the same tenant, through the second app
      const done = await Promise.all(ids.map((id) => client.waitFor(id, { timeoutMs: 60_000 }))).finally(() => client.close());
      assert.deepEqual(
        done.map((generation) => generation.state),
        ids.map(() => 'succeeded'),
      );
      const stats = simulator.stats();
      assert.equal(stats.creates, 6, 'each generation created once');
      assert.equal(stats.throttled, 0, 'no call went over the provider limit');
      const workers = new Set(done.flatMap((generation) => generation.events.filter((event) => event.stage === 'started').map((event) => String(event.data.worker))));
      assert.equal(workers.size, 2, 'both apps took work');
      // Six creates at one per second cannot all go in the first seconds: the budget made them wait.
      const [create] = await budgetStates(second.app.database.db, [{ name: 'replicate:create', perMinute: 60, burst: 1 }]);
      // One slot per create (a create job stopped while it waited for its slot books another when it comes back).
      assert.ok((create?.granted ?? 0) >= 6);
      assert.equal(create?.throttled, 0);
    } finally {
      await second?.stop();
      await first.stop();
      await simulator.stop();
    }
  });

  it('a 429 storm pauses the budget for everyone and nothing fails', async () => {
    const simulator = createSimulator({ latencyMs: { min: 20, max: 50 } });
    await simulator.start();
    const kiln = await startKiln({ env: standaloneProviderEnv(simulator) });
    try {
      simulator.faults.set({ throttle: { forMs: 1500 } });
      const { ids } = await kiln.client.batch({ items: Array.from({ length: 5 }, (_, index) => ({ prompt: `storm ${index}`, platforms: ['thumbnail'] as const })) });
      const done = await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
      for (const generation of done) {
        assert.equal(generation.state, 'succeeded', JSON.stringify(generation.error));
        assert.ok(FINAL.includes(generation.state));
      }
      assert.ok(simulator.stats().throttled >= 1, 'the provider really answered 429');
      const [create] = await budgetStates(kiln.app.database.db, [{ name: 'replicate:create', perMinute: 600, burst: 10 }]);
      assert.ok((create?.throttled ?? 0) >= 1, 'the 429 paused the shared budget');
      // Work that met the pause stepped aside and came back: visible to clients as 'deferred'.
      const deferred = done.flatMap((generation) => generation.events.filter((event) => event.stage === 'deferred'));
      assert.ok(deferred.length >= 1, 'some generation was deferred rather than failed');
      assert.equal(deferred[0]?.data.reason, 'waiting for the provider rate limit');
    } finally {
      await kiln.stop();
      await simulator.stop();
    }
  });
});
