// Migrations carry rows written by earlier versions forward, so no code needs a branch for them.
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../test/support/kiln.ts';
import { openDatabase, type DatabaseHandle } from './database.ts';
import { migrateTo, migrateToLatest } from './migrate.ts';

describe('migration 0007', () => {
  let database: DatabaseHandle;
  before(async () => {
    database = openDatabase({ connectionString: await createTestDatabase(), maxConnections: 2 });
  });
  after(() => database.close());

  it('gives rows from before deadlines and poll numbers both, and then requires them', async () => {
    const { db } = database;
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
    assert.equal(row.deadline_at.toISOString(), '2026-01-01T00:10:00.000Z', 'its deadline: creation plus the default of the day');
    assert.equal(row.poll_seq, 0);

    await assert.rejects(
      sql`UPDATE generations SET deadline_at = NULL WHERE id = ${id}`.execute(db),
      /null value in column "deadline_at"/,
    );
    await assert.rejects(
      sql`UPDATE generations SET provider_status = 'thinking' WHERE id = ${id}`.execute(db),
      /generations_provider_status_known/,
    );
  });
});
