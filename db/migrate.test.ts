// Migrations carry rows written by earlier versions forward, so no code needs a branch for them.
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import { describe, it } from 'node:test';
import { createTestDatabase } from '../test/support/kiln.ts';
import { openDatabase } from './database.ts';
import { recordImageSource } from './image-sources.ts';
import { claimOrphanedKeys } from './retention.ts';
import { migrateTo, migrateToLatest } from './migrate.ts';
import type { Database } from './schema.ts';

/** Runs `test` against a new, empty database, closed afterwards. */
async function inFreshDatabase(test: (db: Kysely<Database>) => Promise<void>): Promise<void> {
  const database = openDatabase({ connectionString: await createTestDatabase(), maxConnections: 2 });
  try {
    await test(database.db);
  } finally {
    await database.close();
  }
}

describe('migration 0007', () => {
  it('gives rows from before deadlines and poll numbers both, and then requires them', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0006-two-phase-provider-work');
      // A row as version 0006 wrote it when the generation asked for no deadline.
      const { rows } = await sql<{ id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, created_at)
        SELECT id, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, '2026-01-01T00:00:00Z' FROM tenant
        RETURNING id
      `.execute(db);
      const id = rows[0]!.id;

      assert.deepEqual(await migrateTo(db, '0007-required-deadlines-and-poll-numbers'), ['0007-required-deadlines-and-poll-numbers']);
      const row = await db.selectFrom('generations').select(['deadline_at', 'poll_seq']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.deadline_at?.toISOString(), '2026-01-01T00:10:00.000Z', 'its deadline: creation plus the default of the day');
      assert.equal(row.poll_seq, 0);

      await assert.rejects(sql`UPDATE generations SET deadline_at = NULL WHERE id = ${id}`.execute(db), /null value in column "deadline_at"/);
      await assert.rejects(
        sql`UPDATE generations SET provider_status = 'thinking' WHERE id = ${id}`.execute(db),
        /generations_provider_status_known/,
      );
    }));
});

describe('migration 0008', () => {
  it('bounds a prediction made before it by its generation\'s deadline, and lets new generations have none', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0007-required-deadlines-and-poll-numbers');
      const { rows } = await sql<{ id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, state, prediction_id, deadline_at)
        SELECT id, 'running', 'black-forest-labs/flux-schnell', '{}'::jsonb, 'running', 'p_old', '2026-01-01T00:10:00Z' FROM tenant
        RETURNING id
      `.execute(db);
      const id = rows[0]!.id;
      assert.deepEqual(await migrateTo(db, '0008-queue-wait-apart-from-run-time'), ['0008-queue-wait-apart-from-run-time']);
      const row = await db.selectFrom('generations').select(['deadline_at', 'prediction_deadline_at']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.prediction_deadline_at?.toISOString(), '2026-01-01T00:10:00.000Z');
      await sql`UPDATE generations SET deadline_at = NULL WHERE id = ${id}`.execute(db); // no deadline is allowed now
      await assert.rejects(
        sql`UPDATE generations SET prediction_id = NULL WHERE id = ${id}`.execute(db),
        /generations_prediction_deadline_with_prediction/,
      );
    }));
});

describe('migration 0009', () => {
  it('leaves earlier generations without a subject, shares earlier tenants by tenant, and allows nothing else', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0007-required-deadlines-and-poll-numbers');
      const { rows } = await sql<{ id: string; tenant_id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, deadline_at)
        SELECT id, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, now() FROM tenant
        RETURNING id, tenant_id
      `.execute(db);
      const { id, tenant_id: tenantId } = rows[0]!;

      assert.ok((await migrateToLatest(db)).includes('0009-subjects'));
      const generation = await db.selectFrom('generations').select('subject').where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(generation.subject, null);
      const tenant = await db.selectFrom('tenants').select('share_by').where('id', '=', tenantId).executeTakeFirstOrThrow();
      assert.equal(tenant.share_by, 'tenant');

      await assert.rejects(sql`UPDATE tenants SET share_by = 'store' WHERE id = ${tenantId}`.execute(db), /tenants_share_by_known/);
      await assert.rejects(sql`UPDATE generations SET subject = '' WHERE id = ${id}`.execute(db), /generations_subject_length/);
      await assert.rejects(sql`UPDATE generations SET subject = ${'u'.repeat(201)} WHERE id = ${id}`.execute(db), /generations_subject_length/);
      // Characters, not bytes: 200 of them fit whatever their encoding.
      await sql`UPDATE generations SET subject = ${'ü'.repeat(200)} WHERE id = ${id}`.execute(db);

      // And back: down removes what up added, and up works again on the rows left.
      await migrateTo(db, '0007-required-deadlines-and-poll-numbers');
      await migrateToLatest(db);
    }));
});

describe('migration 0011', () => {
  it('places waiting work from before it in its lane as the aging of the day did, and lets tenants have a cap of their own', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0010-dispatch');
      const { rows } = await sql<{ id: string; tenant_id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, priority, created_at)
        SELECT id, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, 2, '2026-01-01T00:10:00Z' FROM tenant
        RETURNING id, tenant_id
      `.execute(db);
      const { id, tenant_id: tenantId } = rows[0]!;

      assert.deepEqual(await migrateTo(db, '0011-dispatch-at-scale'), ['0011-dispatch-at-scale']);
      const generation = await db.selectFrom('generations').select('dispatch_order').where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(generation.dispatch_order.toISOString(), '2026-01-01T00:09:00.000Z', 'created_at less 30 s per priority point');
      const tenant = await db.selectFrom('tenants').select('in_progress_cap').where('id', '=', tenantId).executeTakeFirstOrThrow();
      assert.equal(tenant.in_progress_cap, null, 'the configured default');
      await assert.rejects(sql`UPDATE tenants SET in_progress_cap = 0 WHERE id = ${tenantId}`.execute(db), /tenants_in_progress_cap_positive/);
      await assert.rejects(sql`UPDATE generations SET dispatch_order = NULL WHERE id = ${id}`.execute(db), /null value in column "dispatch_order"/);

      await migrateTo(db, '0010-dispatch');
      await migrateToLatest(db);
    }));
});

describe('migration 0012', () => {
  it('leaves earlier tenants on their tier\'s request limits, and allows only positive limits', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0011-dispatch-at-scale');
      const { rows } = await sql<{ id: string }>`INSERT INTO tenants (name) VALUES ('old') RETURNING id`.execute(db);
      const tenantId = rows[0]!.id;
      assert.deepEqual(await migrateTo(db, '0012-request-limits'), ['0012-request-limits']);
      const tenant = await db.selectFrom('tenants').select(['requests_per_minute', 'request_burst', 'subject_requests_per_minute', 'subject_request_burst']).where('id', '=', tenantId).executeTakeFirstOrThrow();
      assert.deepEqual(Object.values(tenant), [null, null, null, null]);
      await assert.rejects(sql`UPDATE tenants SET requests_per_minute = 0 WHERE id = ${tenantId}`.execute(db), /tenants_requests_per_minute_positive/);
      await assert.rejects(sql`UPDATE tenants SET subject_request_burst = -1 WHERE id = ${tenantId}`.execute(db), /tenants_subject_request_burst_positive/);
      await migrateTo(db, '0011-dispatch-at-scale');
      await migrateToLatest(db);
    }));
});

describe('migration 0014', () => {
  it('leaves earlier generations as their own work, charges one served from another its cache price, and releases followers of a failure', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0013-credits');
      const { rows } = await sql<{ id: string; tenant_id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, dispatch_order, price_per, unit_price, reserved)
        SELECT id, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, now(), 'image', 3000, 3000 FROM tenant
        RETURNING id, tenant_id
      `.execute(db);
      const { id: old, tenant_id: tenantId } = rows[0]!;
      await sql`INSERT INTO credit_balances (tenant_id, available, held) VALUES (${tenantId}, 10000, 3000)`.execute(db);

      assert.deepEqual(await migrateTo(db, '0014-cache-and-coalescing'), ['0014-cache-and-coalescing']);
      const before = await db.selectFrom('generations').select(['fingerprint', 'may_reuse', 'served_from_id', 'served_from_kind']).where('id', '=', old).executeTakeFirstOrThrow();
      assert.deepEqual(before, { fingerprint: null, may_reuse: false, served_from_id: null, served_from_kind: null });
      await assert.rejects(sql`UPDATE generations SET served_from_kind = 'cache' WHERE id = ${old}`.execute(db), /generations_served_from_whole/);
      await assert.rejects(sql`UPDATE generations SET served_from_kind = 'copied', served_from_id = ${old} WHERE id = ${old}`.execute(db), /generations_served_from_kind_known/);

      // Two followers of the old one: one served from it (charged its cache price), one left waiting.
      const followers = await sql<{ id: string }>`
        INSERT INTO generations (tenant_id, prompt, model, request, dispatch_order, price_per, unit_price, reserved, cache_price, served_from_id, served_from_kind)
        VALUES (${tenantId}, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, now(), 'image', 3000, 3000, 300, ${old}, 'joined'),
               (${tenantId}, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, now(), 'image', 3000, 3000, 300, ${old}, 'joined')
        RETURNING id
      `.execute(db);
      const [served, waiting] = followers.rows.map((row) => row.id);
      await sql`UPDATE credit_balances SET available = available - 6000, held = held + 6000 WHERE tenant_id = ${tenantId}`.execute(db);
      await sql`UPDATE generations SET state = 'succeeded' WHERE id = ${served!}`.execute(db);
      const charged = await db.selectFrom('generations').select(['provider_cost']).where('id', '=', served!).executeTakeFirstOrThrow();
      assert.equal(charged.provider_cost, '0', 'no provider call of its own');
      const charge = await db.selectFrom('credit_ledger').select(['kind', 'spent']).where('generation_id', '=', served!).executeTakeFirstOrThrow();
      assert.deepEqual(charge, { kind: 'charge', spent: '300' });

      await sql`UPDATE generations SET state = 'failed', error_code = 'provider_failed' WHERE id = ${old}`.execute(db);
      const released = await db.selectFrom('generations').select(['state', 'stage', 'served_from_id']).where('id', '=', waiting!).executeTakeFirstOrThrow();
      assert.deepEqual(released, { state: 'queued', stage: 'cache.released', served_from_id: null }, 'back to the queue as its own work');

      await migrateTo(db, '0013-credits');
      await migrateToLatest(db);
    }));
});

describe('migration 0015', () => {
  it('gives earlier batches no idempotency key, and lets a tenant use a key once', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0014-cache-and-coalescing');
      const { rows } = await sql<{ id: string; tenant_id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO batches (tenant_id, item_count) SELECT id, 1 FROM tenant RETURNING id, tenant_id
      `.execute(db);
      const { id, tenant_id: tenantId } = rows[0]!;
      assert.deepEqual(await migrateTo(db, '0015-batch-keys'), ['0015-batch-keys']);
      const batch = await db.selectFrom('batches').select(['idempotency_key', 'request_hash']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(batch, { idempotency_key: null, request_hash: null });
      await sql`INSERT INTO batches (tenant_id, item_count, idempotency_key) VALUES (${tenantId}, 1, 'k')`.execute(db);
      await assert.rejects(sql`INSERT INTO batches (tenant_id, item_count, idempotency_key) VALUES (${tenantId}, 1, 'k')`.execute(db), /batches_idempotency/);
      await migrateTo(db, '0014-cache-and-coalescing');
      await migrateToLatest(db);
    }));
});

describe('migration 0016', () => {
  it('notes the key of every asset row deleted, however it goes, and steps down and up again', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0015-batch-keys');
      const { rows } = await sql<{ id: string; tenant_id: string }>`
        WITH tenant AS (INSERT INTO tenants (name) VALUES ('old') RETURNING id)
        INSERT INTO generations (tenant_id, prompt, model, request, dispatch_order, deadline_at)
        SELECT id, 'from before', 'black-forest-labs/flux-schnell', '{}'::jsonb, now(), now() FROM tenant
        RETURNING id, tenant_id
      `.execute(db);
      const { id, tenant_id: tenantId } = rows[0]!;
      const asset = (key: string, format: string) => sql`
        INSERT INTO assets (generation_id, tenant_id, kind, format, width, height, bytes, content_hash, storage_key, content_type)
        VALUES (${id}, ${tenantId}, 'variant', ${format}, 1, 1, 1, 'h', ${key}, 'image/png')
      `;
      await asset('a.png', 'png').execute(db);
      assert.deepEqual(await migrateTo(db, '0016-retention'), ['0016-retention']);
      await asset('b.webp', 'webp').execute(db);
      await asset('b.webp', 'avif').execute(db);
      // A generation deleted takes its assets along: their keys are noted, each once.
      await sql`DELETE FROM generations WHERE id = ${id}`.execute(db);
      const orphans = await db.selectFrom('storage_orphans').select(['storage_key', 'object_deleted_at']).orderBy('storage_key').execute();
      assert.deepEqual(orphans, [
        { storage_key: 'a.png', object_deleted_at: null },
        { storage_key: 'b.webp', object_deleted_at: null },
      ]);
      await migrateTo(db, '0015-batch-keys');
      await migrateToLatest(db);
    }));
});

describe('migration 0018', () => {
  it('gives earlier tenants no source hosts, keeps a source once per tenant, and keeps the object of a key a source names', () =>
    inFreshDatabase(async (db) => {
      await migrateTo(db, '0017-request-correlation');
      const { rows } = await sql<{ id: string }>`INSERT INTO tenants (name) VALUES ('old'), ('other') RETURNING id`.execute(db);
      const [tenantId, otherId] = rows.map((row) => row.id) as [string, string];
      assert.deepEqual(await migrateTo(db, '0018-image-sources'), ['0018-image-sources']);
      assert.deepEqual((await db.selectFrom('tenants').select('source_hosts').where('id', '=', tenantId).executeTakeFirstOrThrow()).source_hosts, []);

      const hash = 'a'.repeat(64);
      const source = (id: string, tenant: string) => ({ id, tenant_id: tenant, content_hash: hash, storage_key: `${hash}.png`, format: 'png' as const, width: 2, height: 2, bytes: 10, origin: 'upload' as const, url: null, filename: null });
      const restored: string[] = [];
      // The key was an orphan (an asset of the same bytes went): recording the source takes it back and stores the bytes again.
      await db.insertInto('storage_orphans').values({ storage_key: `${hash}.png` }).execute();
      const first = await recordImageSource(db, source('0190a0c0-0000-7000-8000-000000000001', tenantId), async () => void restored.push('first'));
      const again = await recordImageSource(db, source('0190a0c0-0000-7000-8000-000000000002', tenantId), async () => void restored.push('again'));
      assert.deepEqual([first.deduplicated, again.deduplicated, again.source.id, restored], [false, true, first.source.id, ['first']]);
      assert.equal((await recordImageSource(db, source('0190a0c0-0000-7000-8000-000000000003', otherId), async () => {})).deduplicated, false, 'another tenant\'s own');
      await assert.rejects(
        sql`INSERT INTO image_sources (id, tenant_id, content_hash, storage_key, format, width, height, bytes, origin) VALUES (gen_random_uuid(), ${tenantId}, ${'b'.repeat(64)}, 'k', 'png', 1, 1, 1, 'url')`.execute(db),
        /image_sources_url_check|violates check constraint/,
        'a URL source names its URL',
      );

      // While any source names the key, retention keeps its object; when the last goes, it is an orphan again.
      await db.insertInto('storage_orphans').values({ storage_key: `${hash}.png`, since: new Date(Date.now() - 3_600_000) }).execute();
      assert.deepEqual((await claimOrphanedKeys(db, { orphanedBefore: new Date(), limit: 10 })).keys, []);
      await db.deleteFrom('image_sources').execute();
      await db.updateTable('storage_orphans').set({ since: new Date(Date.now() - 3_600_000) }).execute();
      assert.deepEqual((await claimOrphanedKeys(db, { orphanedBefore: new Date(), limit: 10 })).keys, [`${hash}.png`]);
      await migrateTo(db, '0017-request-correlation');
      await migrateToLatest(db);
    }));
});
