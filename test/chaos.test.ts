// Chaos: three worker processes, two of them killed with SIGKILL at random moments and
// restarted. Every generation still reaches a final state, and the provider's own count shows
// no generation's prediction was created twice. A quarter of the requests repeat earlier ones,
// so copies (served from their leader's success) are in flight when workers die too.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';
import { startWorkerProcess, type WorkerProcess } from './support/worker-process.ts';

const GENERATIONS = 200;
/** The last REPEATS requests repeat the first ones (same prompt and seed): they follow them. */
const REPEATS = 50;
const FINAL = new Set(['succeeded', 'failed', 'canceled']);

describe('chaos', () => {
  it(`${GENERATIONS} generations survive workers killed at random moments`, async () => {
    // The provider and the API outlive the workers, as Replicate and a separate API tier do.
    const simulator = createSimulator({ latencyMs: { min: 300, max: 2500 }, createsPerMinute: 6000, readsPerMinute: 60_000 });
    await simulator.start();
    const shared = {
      ...standaloneProviderEnv(simulator),
      REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret,
      KILN_PROVIDER_CREATES_PER_MINUTE: '6000',
      KILN_PROVIDER_CREATE_BURST: '50',
      KILN_PROVIDER_TIMEOUT_MS: '2000',
      KILN_RETRY_DELAY_SECONDS: '1',
      KILN_WEBHOOK_BACKSTOP_SECONDS: '5',
    };
    const api = await startKiln({ env: { ...shared, KILN_ROLE: 'api' } });
    // One asset folder for all: a copy is rendered from an original another worker stored.
    const workerEnv = { ...shared, DATABASE_URL: api.databaseUrl, KILN_PUBLIC_URL: api.url, KILN_DATA_DIR: api.dataDir, KILN_SHUTDOWN_GRACE_MS: '2000' };
    const workers: WorkerProcess[] = [];
    try {
      for (let index = 0; index < 3; index += 1) workers.push(await startWorkerProcess(workerEnv));
      await Promise.all(workers.map((worker) => worker.ready));

      const distinct = GENERATIONS - REPEATS;
      const items = Array.from({ length: GENERATIONS }, (_, index) => ({ prompt: `chaos ${index % distinct}`, seed: index % distinct, platforms: ['thumbnail' as const] }));
      const { ids } = await api.client.batch({ items });

      // Kill two of the three at random moments while the work is in flight, and bring them back.
      const kills = [0, 1].map(async (index) => {
        await sleep(500 + Math.random() * 3000);
        await workers[index]!.crash();
        await sleep(500 + Math.random() * 1000);
        workers[index] = await startWorkerProcess(workerEnv);
        await workers[index].ready;
      });
      await Promise.all(kills);

      const deadline = Date.now() + 150_000;
      let states: string[] = [];
      while (Date.now() < deadline) {
        const rows = await api.app.database.db.selectFrom('generations').select(['id', 'state']).where('id', 'in', ids).execute();
        states = rows.map((row) => row.state);
        if (states.every((state) => FINAL.has(state))) break;
        await sleep(250);
      }
      const unfinished = states.filter((state) => !FINAL.has(state)).length;
      if (unfinished > 0) {
        const stuck = await api.app.database.db
          .selectFrom('generations')
          .select(['id', 'state', 'stage', 'attempt', 'prediction_id', 'provider_status', 'create_sent_attempt'])
          .where('id', 'in', ids)
          .where('state', 'not in', [...FINAL] as ('succeeded' | 'failed' | 'canceled')[])
          .execute();
        const jobs = await api.app.database.db
          .selectFrom(sql.table('pgboss.job').as('job'))
          .select([sql<string>`name`.as('name'), sql<string>`state`.as('state'), sql<string>`data->>'generationId'`.as('generation'), sql<number>`retry_count`.as('retries'), sql<Date>`start_after`.as('startAfter')])
          .where(sql`data->>'generationId'`, 'in', stuck.map((row) => row.id))
          .execute();
        assert.fail(`${unfinished} generations never reached a final state:\n${JSON.stringify(stuck, null, 1)}\njobs: ${JSON.stringify(jobs, null, 1)}`);
      }
      assert.equal(states.filter((state) => state === 'succeeded').length, GENERATIONS, 'every generation succeeded');

      // The simulator counts creates per generation (the `tag` in each prediction's webhook URL).
      const created = simulator.stats().createsByWebhookTag;
      const twice = ids.filter((id) => (created[id] ?? 0) > 1);
      assert.deepEqual(twice, [], 'no generation had its prediction created twice');
      const leaders = ids.slice(0, GENERATIONS - REPEATS);
      const repeats = ids.slice(GENERATIONS - REPEATS);
      assert.equal(leaders.filter((id) => created[id] === 1).length, leaders.length, 'each distinct request made one prediction');
      const own = repeats.filter((id) => created[id] !== undefined);
      assert.deepEqual(own, [], 'no repeat made one of its own');
      const originals = await api.app.database.db.selectFrom('assets').select(['generation_id', 'content_hash']).where('generation_id', 'in', ids).where('kind', '=', 'original').execute();
      const originalOf = new Map(originals.map((row) => [row.generation_id, row.content_hash]));
      assert.deepEqual(repeats.filter((id, index) => originalOf.get(id) !== originalOf.get(leaders[index]!)), [], 'each repeat holds its leader\'s original');
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()));
      await api.stop();
      await simulator.stop();
    }
  });

  it('a worker stopped with SIGTERM exits within its grace period and leaves its waiting work to be resumed', async () => {
    const simulator = createSimulator({ latencyMs: { min: 2500, max: 3000 } });
    await simulator.start();
    const shared = { ...standaloneProviderEnv(simulator), REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret, KILN_WEBHOOK_BACKSTOP_SECONDS: '2' };
    const api = await startKiln({ env: { ...shared, KILN_ROLE: 'api' } });
    const workerEnv = { ...shared, DATABASE_URL: api.databaseUrl, KILN_PUBLIC_URL: api.url, KILN_SHUTDOWN_GRACE_MS: '3000' };
    let worker = await startWorkerProcess(workerEnv);
    try {
      await worker.ready;
      const { ids } = await api.client.batch({ items: Array.from({ length: 5 }, (_, index) => ({ prompt: `graceful ${index}`, platforms: ['thumbnail'] as const })) });
      // Wait until the provider has them all: the worker holds no job while they run.
      for (let tries = 0; tries < 200; tries += 1) {
        const statuses = await Promise.all(ids.map((id) => api.client.status({ id })));
        if (statuses.every((status) => status.predictionId)) break;
        await sleep(25);
      }
      const stopping = Date.now();
      assert.equal(await worker.stop(), 0, 'a clean exit');
      assert.ok(Date.now() - stopping < 3000 + 5000, 'within the grace period (and the time to close its connections)');

      // Webhooks still reach the API; whatever needs a worker waits for the next one.
      worker = await startWorkerProcess(workerEnv);
      await worker.ready;
      const done = await Promise.all(ids.map((id) => api.client.waitFor(id, { timeoutMs: 60_000 })));
      assert.deepEqual(done.map((generation) => generation.state), ids.map(() => 'succeeded'));
      const created = simulator.stats().createsByWebhookTag;
      assert.deepEqual(ids.map((id) => created[id]), ids.map(() => 1), 'each prediction was created once');
    } finally {
      await worker.stop();
      await api.stop();
      await simulator.stop();
    }
  });
});
