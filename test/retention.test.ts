// Retention, with the assets in the local folder and in a bucket: old events of finished work,
// old finished generations and their empty batches go, with the stored objects that no asset
// names any more; recent work, and objects a kept generation still names, stay. Generations are
// made through the API and then made old in the database (their timestamps moved back).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { silentLogger } from '../jobs/logger.ts';
import { createPruner } from '../jobs/retention/pruner.ts';
import { createLocalStorage } from '../jobs/storage/local-storage.ts';
import { createS3Storage } from '../jobs/storage/s3-storage.ts';
import type { AssetStorage } from '../jobs/storage/storage.ts';
import { loadConfig, type Environment } from '../server/config.ts';
import type { KilnClient } from '../client-sdk/index.ts';
import { rejects } from './support/rejections.ts';
import { startTestBucket, type TestBucket } from './support/s3.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const POLICY: Environment = { KILN_RETAIN_GENERATIONS_DAYS: '30', KILN_RETAIN_EVENTS_DAYS: '7' };
const keyOf = (url: string) => path.basename(new URL(url).pathname);

async function generated(client: KilnClient, input: Parameters<KilnClient['generate']>[0]) {
  const done = await client.waitFor((await client.generate(input)).id, { timeoutMs: 60_000 });
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  return done;
}

for (const kind of ['local', 's3'] as const) {
  describe(`retention, assets in ${kind === 'local' ? 'the data folder' : 'a bucket'}`, () => {
    let bucket: TestBucket | undefined;
    let kiln: TestKiln;
    let storage: AssetStorage;
    let env: Environment;
    before(async () => {
      bucket = kind === 's3' ? await startTestBucket() : undefined;
      env = { ...POLICY, ...bucket?.env };
      kiln = await startKiln({ env });
      const settings = loadConfig({ ...env, KILN_DATA_DIR: kiln.dataDir }).storage;
      storage = settings.kind === 's3' ? createS3Storage(settings) : createLocalStorage(settings.root);
    });
    after(async () => {
      storage?.close();
      await kiln?.stop();
      await bucket?.stop();
    });

    /** Moves a generation, its events and its batch, `days` back in time (or only its events). */
    const age = async (id: string, days: number, what: 'all' | 'events' = 'all') => {
      const db = kiln.app.database.db;
      const shift = sql`make_interval(days => ${days})`;
      await sql`UPDATE generation_events SET at = at - ${shift} WHERE generation_id = ${id}`.execute(db);
      if (what === 'events') return;
      await sql`UPDATE generations SET created_at = created_at - ${shift}, finished_at = finished_at - ${shift} WHERE id = ${id}`.execute(db);
      await sql`UPDATE batches SET created_at = created_at - ${shift} WHERE id = (SELECT batch_id FROM generations WHERE id = ${id})`.execute(db);
    };
    const stored = async (key: string) => (await storage.open(key)) !== undefined;

    it('registers its schedule with the queue', async () => {
      const { rows } = await sql<{ name: string; cron: string }>`SELECT name, cron FROM pgboss.schedule`.execute(kiln.app.database.db);
      assert.deepEqual(rows, [{ name: 'kiln-retention', cron: '*/10 * * * *' }]);
    });

    it('prunes what is past the policy and keeps recent work and the objects still named', async () => {
      const { client } = kiln;
      // Old, alone: everything of it goes.
      const old = await generated(client, { prompt: 'an old harbour', platforms: ['banner'], formats: ['png'], seed: 1, cache: 'off' });
      // Old too, in a batch: the batch goes with its last generation.
      const batch = await client.batch({ items: [{ prompt: 'an old batch item', platforms: ['thumbnail'], formats: ['webp'], seed: 2, cache: 'off' }] });
      const batched = await client.waitFor(batch.ids[0]!, { timeoutMs: 60_000 });
      assert.equal(batched.state, 'succeeded');
      // Old, but a recent generation is served from it: that one's assets name the same original.
      const leader = await generated(client, { prompt: 'a shared original', platforms: ['x-post'], formats: ['jpeg'], seed: 3 });
      const follower = await generated(client, { prompt: 'a shared original', platforms: ['thumbnail'], formats: ['jpeg'], seed: 3 });
      assert.equal(follower.servedFrom?.generationId, leader.id);
      // Recent, with events older than their retention: the events go, the generation stays.
      const quiet = await generated(client, { prompt: 'a quiet generation', platforms: ['thumbnail'], formats: ['png'], seed: 4, cache: 'off' });
      // Recent: nothing of it goes.
      const recent = await generated(client, { prompt: 'a recent one', platforms: ['instagram-post'], formats: ['avif'], seed: 5, cache: 'off' });

      for (const id of [old.id, batched.id, leader.id]) await age(id, 40);
      await age(quiet.id, 10, 'events');

      // Two files at the provider: one that expired an hour ago, one that lives another hour.
      const providerFile = (hash: string, expiresInSeconds: number) =>
        sql`INSERT INTO provider_files (scope, content_hash, file_id, url, expires_at, uploaded_at, uploads)
            VALUES ('retention-test', ${hash}, ${`file-${hash.slice(0, 6)}`}, ${`http://provider.test/${hash}`}, now() + make_interval(secs => ${expiresInSeconds}), now(), 1)`.execute(kiln.app.database.db);
      await providerFile('a'.repeat(64), -3600);
      await providerFile('b'.repeat(64), 3600);

      const pruner = createPruner({ db: kiln.app.database.db, storage, logger: silentLogger, policy: loadConfig(env).retention });
      // As of two minutes on, so the objects orphaned by this very run are past their grace.
      const report = await pruner.run({ now: new Date(Date.now() + 120_000) });
      assert.equal(report.generations, 3);
      assert.equal(report.batches, 1);
      assert.ok(report.events >= 5, `the quiet generation's events went (${report.events})`);
      assert.equal(report.cutShort, false);
      assert.equal(report.providerFiles, 1, 'the expired provider file is forgotten');
      const { rows: files } = await sql<{ content_hash: string }>`SELECT content_hash FROM provider_files WHERE scope = 'retention-test'`.execute(kiln.app.database.db);
      assert.deepEqual(files.map((row) => row.content_hash), ['b'.repeat(64)], 'the living one stays');

      for (const gone of [old, batched, leader]) await rejects(client.status({ id: gone.id }), 'NOT_FOUND');
      await rejects(client.batchStatus({ batchId: batch.batchId }), 'NOT_FOUND');
      for (const asset of [...old.assets, ...batched.assets]) {
        assert.equal(await stored(keyOf(asset.url)), false, `${asset.format} ${asset.platform ?? 'original'} of a pruned generation is deleted`);
        assert.equal((await fetch(asset.url)).status, 404);
      }
      const leaderOnly = leader.assets.find((asset) => asset.platform === 'x-post');
      assert.ok(leaderOnly);
      assert.equal(await stored(keyOf(leaderOnly.url)), false, 'the variant only the pruned leader had is deleted');
      for (const asset of [...follower.assets, ...quiet.assets, ...recent.assets]) {
        assert.equal((await fetch(asset.url)).status, 200, `${asset.url} is still served`);
      }
      assert.ok(follower.assets.some((asset) => asset.kind === 'original' && leader.assets.some((other) => other.url === asset.url)), 'the original the follower shares is kept');

      const quietNow = await client.status({ id: quiet.id });
      assert.equal(quietNow.state, 'succeeded');
      assert.deepEqual(quietNow.events, [], 'its old events went');
      assert.equal(quietNow.assets.length, quiet.assets.length);
      const recentNow = await client.status({ id: recent.id });
      assert.equal(recentNow.events.length, recent.events.length, 'recent events stay');

      // A second run finds nothing more to do.
      const again = await pruner.run({ now: new Date(Date.now() + 120_000) });
      assert.deepEqual(again, { events: 0, generations: 0, batches: 0, objects: 0, providerFiles: 0, cutShort: false });

      // The same image made again is stored again, and its key stops being a tombstone.
      const remade = await generated(client, { prompt: 'an old harbour', platforms: ['banner'], formats: ['png'], seed: 1, cache: 'off' });
      assert.deepEqual(remade.assets.map((asset) => keyOf(asset.url)).sort(), old.assets.map((asset) => keyOf(asset.url)).sort(), 'the same bytes, the same keys');
      for (const asset of remade.assets) assert.equal((await fetch(asset.url)).status, 200);
      const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM storage_orphans WHERE storage_key = ANY(${remade.assets.map((asset) => keyOf(asset.url))})`.execute(kiln.app.database.db);
      assert.equal(Number(rows[0]?.n), 0);
    });
  });
}
