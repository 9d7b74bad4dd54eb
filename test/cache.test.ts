// Cache and coalescing: a request identical to an earlier one of its tenant (same model, prompt,
// parameters and seed) is served from it — from its success, or by joining it while it is in
// flight — with no provider call of its own, its own generation, events and variants, at the
// cache price. Unseeded requests ask for a new image, so they reuse only when they opt in; any
// request can opt out; tenants never share. A leader that fails or is canceled sends its
// followers back to the queue as their own work. A worker killed in the middle of a copy leaves
// it to the next, which completes it once and charges it once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import type { KilnClient } from '../client-sdk/index.ts';
import { grantCredits, toMicroUsd } from '../db/credits.ts';
import type { Database } from '../db/schema.ts';
import { updateTenant } from '../db/tenants.ts';
import type { Simulator } from '../jobs/simulator/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startApiBesideProvider } from './support/api-beside-provider.ts';
import { until } from './support/until.ts';
import { startWorkerProcess } from './support/worker-process.ts';

const FLUX_SCHNELL = 3_000; // $0.003 an image, in micro-dollars
const CACHE_PRICE = 300; // 10 % of it (server/config.ts)

describe('cache and coalescing', () => {
  let kiln: TestKiln;
  let simulator: Simulator;
  before(async () => {
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0', KILN_WORKER_CONCURRENCY: '32' } });
    assert.ok(kiln.app.simulator, 'the built-in simulator runs');
    simulator = kiln.app.simulator;
  });
  after(() => kiln.stop());

  /** Provider predictions created so far, across the whole test app. */
  const creates = () => simulator.stats().creates;

  async function tenant(options: { usd?: number } = {}) {
    const created = await kiln.newTenant();
    // Far above what these tests send: the rate limits are not what is tested here.
    await updateTenant(kiln.app.database.db, created.tenantId, { requestsPerMinute: 1_000_000, requestBurst: 10_000 });
    if (options.usd !== undefined) await grantCredits(kiln.app.database.db, created.tenantId, toMicroUsd(options.usd), 'test');
    return created;
  }

  async function spent(tenantId: string): Promise<{ spent: number; held: number }> {
    const db = kiln.app.database.db;
    const ledger = await db.selectFrom('credit_ledger').select((eb) => eb.fn.sum<string>('spent').as('spent')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    const balance = await db.selectFrom('credit_balances').select('held').where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    return { spent: Number(ledger.spent), held: Number(balance.held) };
  }

  it('makes one prediction for 20 concurrent identical requests, and completes each with its own assets', async () => {
    const { client } = await tenant();
    const before = creates();
    const input = { prompt: 'twenty at once [sim:slow=400]', seed: 20, platforms: ['thumbnail' as const] };
    const accepted = await Promise.all(Array.from({ length: 20 }, () => client.generate(input)));
    const done = await Promise.all(accepted.map(({ id }) => client.waitFor(id, { timeoutMs: 60_000 })));

    assert.equal(creates() - before, 1, 'the provider was called once');
    assert.deepEqual(done.map((generation) => generation.state), Array(20).fill('succeeded'));
    const statuses = await Promise.all(accepted.map(({ id }) => client.status({ id })));
    const leaders = statuses.filter((status) => status.servedFrom === null);
    assert.equal(leaders.length, 1, 'one did the work');
    const originals = new Set(statuses.map((status) => status.assets.find((asset) => asset.kind === 'original')?.contentHash));
    assert.equal(originals.size, 1, 'every one holds the same original');
    for (const status of statuses) {
      assert.deepEqual(status.assets.map((asset) => [asset.kind, asset.platform]).sort(), [['original', null], ['variant', 'thumbnail']]);
      if (status.servedFrom === null) continue;
      assert.equal(status.predictionId, null, 'a follower has no prediction of its own');
      assert.ok(status.events.some((event) => event.stage === 'cache.joined' || event.stage === 'cache.hit'), 'its events say how it was served');
    }
  });

  it('serves a repeat of a success from it: no provider call, its own variants, the cache price', async () => {
    const { tenantId, client } = await tenant({ usd: 1 });
    const input = { prompt: 'served twice', seed: 5, platforms: ['thumbnail' as const] };
    const first = await client.generate(input);
    await client.waitFor(first.id);
    const before = creates();
    const again = await client.generate({ ...input, platforms: ['x-post'], formats: ['png'] });
    const done = await client.waitFor(again.id);

    assert.equal(creates(), before, 'no provider call');
    assert.equal(done.state, 'succeeded');
    const status = await client.status({ id: again.id });
    assert.deepEqual(status.servedFrom, { kind: 'cache', generationId: first.id });
    assert.deepEqual(status.events.map((event) => event.stage), ['queued', 'cache.hit', 'started', 'rendering', 'stored', 'succeeded']);
    const firstStatus = await client.status({ id: first.id });
    const original = (assets: typeof status.assets) => assets.find((asset) => asset.kind === 'original')?.contentHash;
    assert.equal(original(status.assets), original(firstStatus.assets), 'rendered from the earlier original');
    assert.deepEqual(status.assets.filter((asset) => asset.kind === 'variant').map((asset) => [asset.platform, asset.format]), [['x-post', 'png']]);

    assert.deepEqual(await spent(tenantId), { spent: FLUX_SCHNELL + CACHE_PRICE, held: 0 });
    const credits = await client.credits({ days: 1 });
    assert.deepEqual(credits.usage.map((row) => [row.generations, row.fromCache, row.joined, row.chargedUsd, row.providerCostUsd]), [[2, 1, 0, 0.0033, 0.003]]);
    const stats = await client.stats();
    assert.deepEqual(stats.servedFrom, { cache: 1, joined: 0 });
  });

  it('checks and reserves a repeat of a success at the cache price, and says so when the credit is short', async () => {
    const { tenantId, client } = await tenant({ usd: FLUX_SCHNELL / 1_000_000 }); // the first image, nothing more
    const input = { prompt: 'cheap the second time', seed: 21, platforms: ['thumbnail' as const] };
    const first = await client.generate(input);
    await client.waitFor(first.id);
    await grantCredits(kiln.app.database.db, tenantId, CACHE_PRICE - 100, 'test');

    const before = await kiln.countGenerations();
    await rejects(client.generate(input), 'PAYMENT_REQUIRED', /^not enough credit: this generation reserves \$0\.0003, the cache price \(it is served from an identical earlier success\), and \$0\.0002 is available; nothing was queued$/);
    await rejects(client.batch({ items: [input, input] }), 'PAYMENT_REQUIRED', /these 2 generations reserve \$0\.0006 \(2 of them the cache price: served from identical earlier successes\), and \$0\.0002/);
    await rejects(client.batch({ items: [input, { ...input, seed: 22 }] }), 'PAYMENT_REQUIRED', /these 2 generations reserve \$0\.0033 \(1 of them the cache price/);
    await rejects(client.generate({ ...input, cache: 'off' }), 'PAYMENT_REQUIRED', /^not enough credit: this generation reserves \$0\.003, and \$0\.0002 is available/);
    assert.equal(await kiln.countGenerations(), before, 'nothing written');

    // Exactly the cache price is enough: it is all a hit reserves.
    await grantCredits(kiln.app.database.db, tenantId, 100, 'test');
    const providerCalls = creates();
    const again = await client.generate(input);
    assert.equal((await client.waitFor(again.id)).state, 'succeeded');
    assert.equal(creates(), providerCalls, 'served from the first');
    assert.deepEqual((await client.status({ id: again.id })).servedFrom, { kind: 'cache', generationId: first.id });
    assert.deepEqual(await spent(tenantId), { spent: FLUX_SCHNELL + CACHE_PRICE, held: 0 });
    const { availableUsd } = await client.credits({ days: 1 });
    assert.equal(availableUsd, 0);
  });

  it('calls the provider for an unseeded request unless it opts in, and always with the cache off', async () => {
    const { client } = await tenant();
    const run = async (input: Parameters<typeof client.generate>[0]) => {
      const before = creates();
      const { id } = await client.generate(input);
      await client.waitFor(id);
      return { calls: creates() - before, servedFrom: (await client.status({ id })).servedFrom };
    };
    const unseeded = { prompt: 'a new image each time', platforms: ['thumbnail' as const] };
    assert.equal((await run(unseeded)).calls, 1);
    assert.equal((await run(unseeded)).calls, 1, 'no seed: a new random image');
    const reused = await run({ ...unseeded, cache: 'reuse-unseeded' });
    assert.equal(reused.calls, 0, 'any image of this prompt will do');
    assert.equal(reused.servedFrom?.kind, 'cache');

    const seeded = { prompt: 'seeded, but fresh please', seed: 3, platforms: ['thumbnail' as const] };
    assert.equal((await run(seeded)).calls, 1);
    const off = await run({ ...seeded, cache: 'off' });
    assert.deepEqual(off, { calls: 1, servedFrom: null });
  });

  it('never serves one tenant from another tenant\'s generations', async () => {
    const a = await tenant();
    const b = await tenant();
    const input = { prompt: 'mine, not yours', seed: 8, platforms: ['thumbnail' as const] };
    await a.client.waitFor((await a.client.generate(input)).id);
    const before = creates();
    const { id } = await b.client.generate(input);
    await b.client.waitFor(id);
    assert.equal(creates() - before, 1);
    assert.equal((await b.client.status({ id })).servedFrom, null);
  });

  it('sends the followers of a canceled leader back to the queue, where one runs for the others', async () => {
    const { client } = await tenant();
    const input = { prompt: 'the leader gives up [sim:slow=1500]', seed: 4, platforms: ['thumbnail' as const] };
    const leader = await client.generate(input);
    await until(async () => ((await client.status({ id: leader.id })).predictionId ?? undefined));
    const followers = await Promise.all([1, 2, 3].map(() => client.generate(input)));
    for (const { id } of followers) assert.deepEqual((await client.status({ id })).servedFrom, { kind: 'joined', generationId: leader.id });

    const before = creates();
    await client.cancel({ id: leader.id });
    const done = await Promise.all(followers.map(({ id }) => client.waitFor(id, { timeoutMs: 60_000 })));
    assert.deepEqual(done.map((generation) => generation.state), ['succeeded', 'succeeded', 'succeeded']);
    assert.equal(creates() - before, 1, 'one of them ran, the others joined it');
    const statuses = await Promise.all(followers.map(({ id }) => client.status({ id })));
    for (const status of statuses) assert.ok(status.events.some((event) => event.stage === 'cache.released'));
    assert.equal(statuses.filter((status) => status.servedFrom === null).length, 1);
  });

  it('sends the followers of a failed leader back to the queue: each is its own work, charged as such', async () => {
    const { tenantId, client } = await tenant({ usd: 1 });
    const input = { prompt: 'fails for everyone [sim:fail] [sim:slow=800]', seed: 6, platforms: ['thumbnail' as const] };
    const leader = await client.generate(input);
    const followers = await Promise.all([1, 2].map(() => client.generate(input)));
    const all = [leader, ...followers];
    const done = await Promise.all(all.map(({ id }) => client.waitFor(id, { timeoutMs: 60_000 })));
    assert.deepEqual(done.map((generation) => [generation.state, generation.error?.code]), Array(3).fill(['failed', 'provider_failed']));
    const byTag = simulator.stats().createsByWebhookTag;
    assert.deepEqual(all.map(({ id }) => byTag[id]), [1, 1, 1], 'after its leader failed, each tried once on its own');
    for (const { id } of followers) assert.ok((await client.status({ id })).events.some((event) => event.stage === 'cache.released'));
    assert.deepEqual(await spent(tenantId), { spent: 0, held: 0 }, 'all refunded');
  });

  /** A success whose stored original is then removed, as a lost store would; answers its id. */
  async function successWithoutItsOriginal(client: KilnClient, input: { prompt: string; seed: number; platforms: 'thumbnail'[] }): Promise<string> {
    const { id } = await client.generate(input);
    await client.waitFor(id);
    const db = kiln.app.database.db;
    const { storage_key: key } = await db.selectFrom('assets').select('storage_key').where('generation_id', '=', id).where('kind', '=', 'original').executeTakeFirstOrThrow();
    await rm(path.join(kiln.dataDir, 'assets', key.slice(0, 2), key));
    return id;
  }

  it('runs a hit whose original is no longer stored as its own work, at its full price, and forgets that source', async () => {
    const { tenantId, client } = await tenant({ usd: 1 });
    const input = { prompt: 'its original is gone', seed: 12, platforms: ['thumbnail' as const] };
    const first = { id: await successWithoutItsOriginal(client, input) };

    const before = creates();
    const again = await client.generate(input);
    const done = await client.waitFor(again.id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded');
    assert.equal(creates() - before, 1, 'the provider made it anew');
    const status = await client.status({ id: again.id });
    assert.equal(status.servedFrom, null);
    assert.ok(status.predictionId, 'it has a prediction of its own');
    const stages = status.events.map((event) => event.stage);
    assert.deepEqual(stages.slice(0, 4), ['queued', 'cache.hit', 'started', 'cache.released'], 'the lookup found the success, the copy found no image');
    assert.equal(status.events[1]?.data.generationId, first.id);
    assert.deepEqual(status.events[3]?.data, { generationId: first.id, because: 'original_missing' }, 'the event says why it runs on its own');
    assert.deepEqual(await spent(tenantId), { spent: 2 * FLUX_SCHNELL, held: 0 }, 'charged as its own work');

    const third = await client.generate(input);
    assert.equal((await client.waitFor(third.id)).state, 'succeeded');
    assert.deepEqual((await client.status({ id: third.id })).servedFrom, { kind: 'cache', generationId: again.id }, 'served from the new success, not the one that lost its image');
  });

  it('fails such a hit as insufficient_credit when its tenant cannot pay for its own work, refunding it', async () => {
    const { tenantId, client } = await tenant({ usd: (FLUX_SCHNELL + CACHE_PRICE + 100) / 1_000_000 });
    const input = { prompt: 'gone, and no credit for another', seed: 13, platforms: ['thumbnail' as const] };
    await successWithoutItsOriginal(client, input);

    const before = creates();
    const again = await client.generate(input);
    const done = await client.waitFor(again.id, { timeoutMs: 60_000 });
    assert.deepEqual([done.state, done.error?.code], ['failed', 'insufficient_credit']);
    assert.match(done.error?.message ?? '', /no longer stored.*add credit/);
    assert.equal(creates(), before, 'no provider call');
    const stages = (await client.status({ id: again.id })).events.map((event) => event.stage);
    assert.deepEqual(stages, ['queued', 'cache.hit', 'started', 'failed'], 'the cache price was covered; its own work would not be');
    assert.deepEqual(await spent(tenantId), { spent: FLUX_SCHNELL, held: 0 });
    const { availableUsd, heldUsd } = await client.credits({ days: 1 });
    assert.deepEqual({ availableUsd, heldUsd }, { availableUsd: (CACHE_PRICE + 100) / 1_000_000, heldUsd: 0 }, 'its cache price refunded');
  });

  it('refuses an unknown cache mode with the field named', async () => {
    const error = await rejects(kiln.client.generate({ prompt: 'ok', cache: 'sometimes' as never }), 'BAD_REQUEST', /cache must be one of: default, reuse-unseeded, off/);
    assert.deepEqual(Object.keys(fieldsOf(error)), ['cache']);
    const inBatch = await rejects(kiln.client.batch({ items: [{ prompt: 'a' }, { prompt: 'b', cache: 1 as never }] }), 'BAD_REQUEST');
    assert.deepEqual(Object.keys(fieldsOf(inBatch)), ['items.1.cache']);
  });
});

/**
 * Holds a tenant's credit balance row (FOR UPDATE) until released: whatever settles a generation
 * of that tenant waits for it, inside the transaction that ends the generation. `waiting()` says
 * how many other backends wait for it.
 */
async function holdBalance(db: Kysely<Database>, tenantId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holder = 0;
  const held = new Promise<void>((resolve, reject) => {
    db.transaction()
      .execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid FROM credit_balances WHERE tenant_id = ${tenantId} FOR UPDATE`.execute(trx);
        holder = rows[0]!.pid;
        resolve();
        await released;
      })
      .catch(reject);
  });
  await held;
  return {
    release,
    async waiting(): Promise<number> {
      const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity WHERE ${holder}::int = ANY (pg_blocking_pids(pid))`.execute(db);
      return Number(rows[0]?.n ?? 0);
    },
  };
}

describe('a cache copy whose worker is killed in the middle of it', () => {
  it('succeeds once after a restart, with its assets, and its tenant is charged once', async () => {
    const rig = await startApiBesideProvider({ min: 50, max: 150 });
    // One asset folder for all: the copy is rendered from the original the first worker stored.
    const { simulator, api, workerEnv } = rig;
    const db = api.app.database.db;
    const { tenantId, client } = api;
    let worker = await startWorkerProcess(workerEnv);
    let balance: Awaited<ReturnType<typeof holdBalance>> | undefined;
    try {
      await grantCredits(db, tenantId, toMicroUsd(1), 'test');
      await worker.ready;
      const input = { prompt: 'copied while its worker dies', seed: 31, platforms: ['thumbnail' as const] };
      const leader = await client.generate(input);
      assert.equal((await client.waitFor(leader.id, { timeoutMs: 60_000 })).state, 'succeeded');
      const providerCalls = simulator.stats().creates;

      // With no worker running, the repeat is queued with its copy job, and the tenant's balance
      // row is held: the next worker reads, renders and stores the copy, then waits inside the
      // transaction that completes it and charges the cache price — and is killed there.
      assert.equal(await worker.stop(), 0);
      const { id } = await client.generate({ ...input, platforms: ['thumbnail', 'x-post'], formats: ['webp', 'png'] });
      assert.deepEqual((await client.status({ id })).servedFrom, { kind: 'cache', generationId: leader.id });
      balance = await holdBalance(db, tenantId);
      worker = await startWorkerProcess(workerEnv);
      await until(async () => ((await balance!.waiting()) > 0 ? true : undefined), 60_000);
      const midway = await client.status({ id });
      assert.deepEqual([midway.state, midway.stage, midway.assets.length], ['running', 'stored', 0], 'its images stored, its success not committed');
      assert.notEqual(await worker.crash(), 0, 'the worker was killed');
      balance.release();

      // The next worker takes the copy up once pg-boss has noticed the first one's silence.
      worker = await startWorkerProcess(workerEnv);
      const done = await client.waitFor(id, { timeoutMs: 120_000 });
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      const status = await client.status({ id });
      const stages = status.events.map((event) => event.stage);
      assert.equal(stages.filter((stage) => stage === 'succeeded').length, 1, 'it succeeded once');
      const starts = status.events.filter((event) => event.stage === 'started');
      assert.equal(starts.length, 2, 'the killed attempt, and the one after the restart');
      assert.equal(starts[1]?.data.copyOf, leader.id);
      assert.deepEqual(status.servedFrom, { kind: 'cache', generationId: leader.id });
      assert.equal(status.predictionId, null);
      assert.equal(simulator.stats().creates, providerCalls, 'no provider call for the copy, before or after the crash');
      assert.equal(simulator.stats().createsByWebhookTag[id], undefined);

      // Its assets, once each, served over HTTP with the bytes they claim; its original is the leader's.
      assert.deepEqual(
        status.assets.map((asset) => [asset.kind, asset.platform, asset.format]).sort(),
        [['original', null, 'png'], ['variant', 'thumbnail', 'png'], ['variant', 'thumbnail', 'webp'], ['variant', 'x-post', 'png'], ['variant', 'x-post', 'webp']],
      );
      const leaderOriginal = (await client.status({ id: leader.id })).assets.find((asset) => asset.kind === 'original');
      assert.equal(status.assets.find((asset) => asset.kind === 'original')?.contentHash, leaderOriginal?.contentHash);
      for (const asset of status.assets) {
        const response = await fetch(asset.url);
        assert.equal(response.status, 200, asset.url);
        const bytes = Buffer.from(await response.arrayBuffer());
        assert.equal(bytes.length, asset.bytes);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), asset.contentHash);
      }

      // Charged once: one reservation and one charge of the cache price; nothing left held.
      const ledger = await db.selectFrom('credit_ledger').select(['kind', 'spent']).where('generation_id', '=', id).orderBy('id').execute();
      assert.deepEqual(ledger.map((row) => [row.kind, Number(row.spent)]), [['reserve', 0], ['charge', CACHE_PRICE]]);
      const credits = await client.credits({ days: 1 });
      assert.deepEqual([credits.availableUsd, credits.heldUsd], [(1_000_000 - FLUX_SCHNELL - CACHE_PRICE) / 1_000_000, 0]);
    } finally {
      balance?.release();
      await worker.stop();
      await rig.stop();
    }
  });
});
