// PostgreSQL goes away under load and comes back, a few times: every Kiln process stays up,
// answers "database unavailable" meanwhile, and carries on by itself afterwards. Every generation
// succeeds with one prediction created for it, one set of assets and its events in order, and a
// client waiting or watching from before the outage gets everything once.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { TRPCClientError, createKilnClient, type GenerationEvent } from '../client-sdk/index.ts';
import { comparePositions, decodePosition } from '../db/events.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startDedicatedPostgres } from './support/dedicated-postgres.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';
import { freePort } from './support/ports.ts';
import { startWorkerProcess } from './support/worker-process.ts';

const GENERATIONS = Number(process.env.KILN_TEST_DB_RESTART_GENERATIONS ?? 150);
/** The outage was crashing a process in about half the rounds: a few rounds per run (more on request). */
const ROUNDS = Number(process.env.KILN_TEST_DB_RESTART_ROUNDS ?? 3);
const OUTAGE_MS = 10_000;
const FINAL = new Set(['succeeded', 'failed', 'canceled']);

describe('database restart', () => {
  it(`${GENERATIONS} generations ride out PostgreSQL stopping for ${OUTAGE_MS / 1000} s, ${ROUNDS} times`, async (t) => {
    const postgres = await startDedicatedPostgres();
    // The provider outlives the outage, as Replicate does; generous limits so Kiln's own budget paces the creates.
    const simulator = createSimulator({ latencyMs: { min: 500, max: 2500 }, createsPerMinute: 60_000, readsPerMinute: 60_000 });
    await simulator.start();
    const port = await freePort();
    const shared = {
      ...standaloneProviderEnv(simulator),
      REPLICATE_WEBHOOK_SECRET: simulator.webhookSecret,
      KILN_PUBLIC_URL: `http://127.0.0.1:${port}`,
      // Creates at 10/s: 150 take 15 s, so the outages fall while work is being created and run.
      KILN_PROVIDER_CREATES_PER_MINUTE: '600',
      KILN_PROVIDER_TIMEOUT_MS: '2000',
      KILN_RETRY_DELAY_SECONDS: '1',
      KILN_WEBHOOK_BACKSTOP_SECONDS: '5',
      // Every call checks its key in the database, as one with a key not seen lately does.
      KILN_AUTH_CACHE_MS: '0',
    };
    // API and worker in this process, and a second worker in a process of its own.
    const kiln = await startKiln({ databaseUrl: postgres.connectionString, env: { ...shared, PORT: String(port) } });
    const worker = await startWorkerProcess({ ...shared, DATABASE_URL: postgres.connectionString });
    const watching = new AbortController();
    try {
      await worker.ready;
      const { batchId, ids } = await kiln.client.batch({
        items: Array.from({ length: GENERATIONS }, (_, index) => ({ prompt: `outage ${index}`, platforms: ['thumbnail'] as const })),
      });
      // Started before the first outage: they must ride it out, not fail.
      const waited = kiln.client.waitFor(ids.at(-1)!, { timeoutMs: ROUNDS * (OUTAGE_MS + 5_000) + 120_000 });
      let lateWait: Promise<{ state: string }> | undefined;
      const received: GenerationEvent[] = [];
      let started!: () => void;
      const subscribed = new Promise<void>((resolve) => (started = resolve));
      const watched = (async () => {
        for await (const event of kiln.client.watch({ batchId }, { signal: watching.signal, onStarted: () => started() })) received.push(event);
      })();
      await subscribed;

      for (let round = 1; round <= ROUNDS; round += 1) {
        await sleep(round === 1 ? 3_000 : 2_000); // work in flight: creates, waits and renders
        const unfinished = await kiln.app.database.db.selectFrom('generations').select(['state']).where('batch_id', '=', batchId).where('state', 'in', ['queued', 'running']).execute();
        const running = unfinished.filter((row) => row.state === 'running').length;
        t.diagnostic(`round ${round}: PostgreSQL stopped with ${unfinished.length} generations unfinished, ${running} of them running`);
        if (round === 1) assert.ok(running > 0, 'the first outage hits work in flight');
        const downSince = performance.now();
        await postgres.stopServer();

        assert.equal(worker.child.exitCode, null, `round ${round}: the worker process is still running`);
        await assert.rejects(kiln.client.status({ id: ids[0]! }), (error: unknown) => {
          assert.ok(error instanceof TRPCClientError, String(error));
          assert.equal(error.data?.code, 'SERVICE_UNAVAILABLE', `round ${round}: ${error.message}`);
          assert.equal(error.message, 'database unavailable, retry in a moment');
          return true;
        });
        const raw = await fetch(`${kiln.url}/trpc/status?input=${encodeURIComponent(JSON.stringify({ id: ids[0] }))}`, {
          headers: { Authorization: `Bearer ${kiln.apiKey}` },
        });
        assert.equal(raw.status, 503);
        assert.match(raw.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After in whole seconds');
        const ready = await fetch(`${kiln.url}/ready`);
        assert.equal(ready.status, 503, '/ready says the database is down');
        assert.ok(ready.headers.get('retry-after'));
        assert.equal((await fetch(`${kiln.url}/health`)).status, 200, '/health (liveness) does not depend on the database');
        const scrape = await fetch(`${kiln.url}/metrics`);
        assert.equal(scrape.status, 200, '/metrics answers without the database (the cluster series left out)');
        assert.match(await scrape.text(), /^kiln_http_requests_total/m);
        // A client that starts waiting during the outage: its subscription is refused as
        // unavailable at first (its key cannot be checked), and it tries again until it works.
        if (round === 1) {
          const late = createKilnClient({ url: kiln.url, apiKey: kiln.apiKey });
          lateWait = late.waitFor(ids[1]!, { timeoutMs: ROUNDS * (OUTAGE_MS + 5_000) + 120_000 }).finally(() => late.close());
        }

        await sleep(Math.max(0, OUTAGE_MS - (performance.now() - downSince)));
        assert.equal(worker.child.exitCode, null, `round ${round}: the worker process outlived the outage`);
        await postgres.startServer();
      }

      // After the last outage: everything finishes by itself.
      const deadline = Date.now() + 150_000 + GENERATIONS * 100;
      let rows: { id: string; state: string }[] = [];
      while (Date.now() < deadline) {
        rows = await kiln.app.database.db.selectFrom('generations').select(['id', 'state']).where('batch_id', '=', batchId).execute();
        if (rows.every((row) => FINAL.has(row.state))) break;
        await sleep(250);
      }
      const notSucceeded = rows.filter((row) => row.state !== 'succeeded');
      assert.deepEqual(notSucceeded, [], 'every generation succeeded');
      assert.equal(rows.length, GENERATIONS);
      assert.equal((await fetch(`${kiln.url}/ready`)).status, 200, '/ready again');

      // Nothing ran twice: one prediction created per generation (the simulator counts creates by the generation's tag) …
      const created = simulator.stats().createsByWebhookTag;
      assert.deepEqual(ids.filter((id) => created[id] !== 1).map((id) => ({ id, creates: created[id] ?? 0 })), [], 'one prediction created per generation');
      // … one set of assets (the original and the thumbnail) …
      const assets = await kiln.app.database.db.selectFrom('assets').select(['generation_id', 'kind', 'platform', 'format']).where('generation_id', 'in', ids).execute();
      const assetsPer = new Map<string, string[]>();
      for (const asset of assets) assetsPer.set(asset.generation_id, [...(assetsPer.get(asset.generation_id) ?? []), `${asset.kind}:${asset.platform}:${asset.format}`]);
      const oddAssets = ids.filter((id) => new Set(assetsPer.get(id)).size !== assetsPer.get(id)?.length || assetsPer.get(id)?.length !== 2);
      assert.deepEqual(oddAssets, [], 'each generation has one original and one thumbnail');
      // … and each generation's stored events end with one success, with one prediction throughout.
      const events = await kiln.app.database.db.selectFrom('generation_events').select(['generation_id', 'stage', 'data']).where('generation_id', 'in', ids).orderBy('id').execute();
      for (const id of ids) {
        const own = events.filter((event) => event.generation_id === id);
        assert.equal(own.at(-1)?.stage, 'succeeded', `${id}: ${own.map((event) => event.stage).join(' → ')}`);
        assert.equal(own.filter((event) => event.stage === 'succeeded').length, 1);
        const predictions = new Set(own.filter((event) => event.stage === 'provider.created').map((event) => (event.data as { predictionId?: string }).predictionId));
        assert.equal(predictions.size, 1, `${id}: one prediction (${[...predictions].join(', ')})`);
      }
      const adopted = events.filter((event) => event.stage === 'provider.created' && (event.data as { recovered?: boolean }).recovered).length;
      t.diagnostic(`${adopted} predictions created before an outage were found again among the provider's and adopted`);

      // The clients that were waiting and watching all along.
      const done = await waited;
      assert.equal(done.state, 'succeeded');
      assert.equal((await lateWait)?.state, 'succeeded', 'the client that started waiting during the outage');
      for (let tries = 0; tries < 400 && received.filter((event) => event.stage === 'succeeded').length < GENERATIONS; tries += 1) await sleep(25);
      watching.abort();
      await watched;
      const positions = received.map((event) => decodePosition(event.id)!);
      const outOfOrder = positions.findIndex((position, index) => index > 0 && comparePositions(positions[index - 1]!, position) >= 0);
      assert.equal(outOfOrder, -1, 'the watcher got each event once, in order');
      assert.equal(received.filter((event) => event.stage === 'succeeded').length, GENERATIONS, 'and every success');
    } finally {
      watching.abort();
      await worker.stop();
      await kiln.stop();
      await simulator.stop();
      await postgres.close();
    }
  });
});
