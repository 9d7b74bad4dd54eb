// Scale-out: two API processes and two worker processes share nothing but PostgreSQL and an
// S3 bucket (each has a data folder of its own). Work goes in through both APIs while subscribers listen on the other one, and a
// worker is killed midway: every generation completes once, every subscriber sees every event
// of its generation once and in order, and every asset can be fetched from either API.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createKilnClient, type GenerationEvent, type KilnClient } from '../client-sdk/index.ts';
import { createApiKey } from '../db/api-keys.ts';
import { openDatabase } from '../db/database.ts';
import { createTenant, updateTenant } from '../db/tenants.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { createTestDatabase } from './support/kiln.ts';
import { startTestBucket } from './support/s3.ts';
import { standaloneProviderEnv } from './support/simulator.ts';
import { until } from './support/until.ts';
import { startKilnProcess, type KilnProcess } from './support/worker-process.ts';

const GENERATIONS = 300;
/** Subscriptions per watching client: within the server's 100 per WebSocket. */
const WATCHES_PER_CLIENT = 75;

describe('scale-out', () => {
  it(`${GENERATIONS} generations through two APIs and two workers, one of them killed midway`, async () => {
    const simulator = createSimulator({ latencyMs: { min: 300, max: 1500 }, createsPerMinute: 6000, readsPerMinute: 60_000, imageSize: 256 });
    await simulator.start();
    const databaseUrl = await createTestDatabase();
    const bucket = await startTestBucket();
    const database = openDatabase({ connectionString: databaseUrl, maxConnections: 2 });
    const processes: KilnProcess[] = [];
    const clients: KilnClient[] = [];
    const start = async (role: 'api' | 'worker', env: Record<string, string>) => {
      const started = await startKilnProcess({ role, env });
      processes.push(started);
      await started.ready;
      return started;
    };
    try {
      const shared = {
        ...standaloneProviderEnv(simulator),
        ...bucket.env,
        REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret,
        DATABASE_URL: databaseUrl,
        KILN_PROVIDER_CREATES_PER_MINUTE: '6000',
        KILN_PROVIDER_CREATE_BURST: '50',
        KILN_RETRY_DELAY_SECONDS: '1',
        KILN_SHUTDOWN_GRACE_MS: '2000',
      };
      // The first API migrates the database; the others find it current.
      const first = await start('api', shared);
      const [second] = await Promise.all([start('api', shared), ...[1, 2].map(() => start('worker', { ...shared, KILN_PUBLIC_URL: first.url()! }))]);
      const apis = [first, second!];
      const workers = processes.filter((process) => !apis.includes(process));

      const tenant = await createTenant(database.db, 'scale-out');
      await updateTenant(database.db, tenant.id, { requestsPerMinute: 1_000_000, requestBurst: 10_000 });
      const { key } = await createApiKey(database.db, tenant.id, 'scale-out');
      const client = (api: KilnProcess) => {
        const made = createKilnClient({ url: api.url()!, apiKey: key });
        clients.push(made);
        return made;
      };
      const submitters = apis.map(client);

      // Each generation is watched on the API it was not submitted to.
      const watchers = apis.map(() => Array.from({ length: Math.ceil(GENERATIONS / 2 / WATCHES_PER_CLIENT) }, () => undefined as KilnClient | undefined));
      const watcherFor = (api: number, index: number) => {
        const slot = Math.floor(index / 2 / WATCHES_PER_CLIENT);
        return (watchers[api]![slot] ??= client(apis[api]!));
      };
      const watched = new Map<string, Promise<GenerationEvent[]>>();
      const collect = async (watcher: KilnClient, generationId: string) => {
        const events: GenerationEvent[] = [];
        for await (const event of watcher.watch({ generationId }, { signal: AbortSignal.timeout(120_000) })) events.push(event);
        return events;
      };

      const ids: string[] = [];
      const submit = async (index: number) => {
        const via = index % 2;
        const { id } = await submitters[via]!.generate({ prompt: `scaled out ${index}`, platforms: ['thumbnail'] });
        ids.push(id);
        watched.set(id, collect(watcherFor(1 - via, index), id));
      };
      // In waves, so the kill lands while work is in flight on both workers.
      const waves = 6;
      let inFlightAtKill = 0;
      const perWave = GENERATIONS / waves;
      for (let wave = 0; wave < waves; wave += 1) {
        await Promise.all(Array.from({ length: perWave }, (_, offset) => submit(wave * perWave + offset)));
        if (wave === 2) {
          await until(async () => ((await succeeded(ids)) >= perWave ? true : undefined), 60_000);
          assert.notEqual(await workers[0]!.crash(), 0, 'the first worker was killed');
          inFlightAtKill = ids.length - (await succeeded(ids));
        }
      }

      async function succeeded(of: readonly string[]): Promise<number> {
        const row = await database.db.selectFrom('generations').select((eb) => eb.fn.countAll<string>().as('n')).where('id', 'in', of).where('state', '=', 'succeeded').executeTakeFirstOrThrow();
        return Number(row.n);
      }
      const streams = await Promise.all(ids.map(async (id) => [id, await watched.get(id)!] as const));

      assert.ok(inFlightAtKill > 0, 'work was in flight when the worker died');
      assert.equal(await succeeded(ids), GENERATIONS, 'every generation succeeded');
      const created = simulator.stats().createsByWebhookTag;
      assert.deepEqual(ids.filter((id) => created[id] !== 1), [], 'each made exactly one prediction');

      // What each subscriber saw is the generation's whole event log, once and in order.
      const logged = await database.db.selectFrom('generation_events').select(['generation_id', 'id', 'xid', 'stage']).where('generation_id', 'in', ids).orderBy('xid').orderBy('id').execute();
      const logOf = new Map<string, string[]>();
      for (const event of logged) logOf.set(event.generation_id, [...(logOf.get(event.generation_id) ?? []), `${event.xid}:${event.id} ${event.stage}`]);
      for (const [id, events] of streams) {
        const seen = events.filter((event) => event.stage !== 'queue.position').map((event) => `${event.id} ${event.stage}`);
        assert.deepEqual(seen, logOf.get(id), `generation ${id}: its subscriber saw its log`);
        assert.equal(events.at(-1)?.state, 'succeeded');
      }

      // Every asset, from either API.
      const statuses = await Promise.all(ids.map((id, index) => submitters[index % 2]!.status({ id })));
      const keys = statuses.flatMap((status) => status.assets.map((asset) => new URL(asset.url).pathname));
      assert.equal(keys.length, GENERATIONS * 2, 'an original and a thumbnail each');
      const stored = new Set(await bucket.keys());
      assert.deepEqual(keys.filter((pathname) => !stored.has(pathname.slice('/assets/'.length))), [], 'every asset is in the bucket');
      for (const api of apis) {
        const answers = await Promise.all(keys.map(async (pathname) => (await fetch(`${api.url()}${pathname}`)).status));
        assert.deepEqual(answers.filter((status) => status !== 200), [], `every asset is served by ${api.url()}`);
      }
      await Promise.all(workers.map((worker) => worker.stop()));
    } finally {
      for (const made of clients) made.close();
      await Promise.all(processes.map((process) => process.stop()));
      await database.close();
      await simulator.stop();
      await bucket.stop();
    }
  });
});
