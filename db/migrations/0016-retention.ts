import { sql, type Kysely } from 'kysely';

// Retention (db/retention.ts): old events, finished generations, their empty batches, and the
// stored objects no asset names any more are pruned in small batches. What the deletes need:
// - finished generations by age, through an index, so a batch is a range read, not a scan;
// - followers in flight, running ones too: a generation that one is being served from stays;
// - batches by age.
// Events need none: they are pruned in id order (the primary key), which follows their time.
// (A deleted generation's ledger rows lose their link through 0013's credit_ledger_generation.)
//
// Objects: an asset row deleted (by retention, or a tenant's deletion cascading) leaves its
// key in `storage_orphans`; retention deletes the object once no asset names the key, and keeps
// the row as a tombstone (object_deleted_at) for a while. A worker recording an asset whose key
// is there takes the row away in the same statement and stores the bytes again, so an object
// deleted between a worker's put (skipped: it existed) and its commit is put back.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE INDEX generations_finished ON generations (finished_at) WHERE state IN ('succeeded', 'failed', 'canceled');
    DROP INDEX generations_followers;
    CREATE INDEX generations_followers ON generations (served_from_id) WHERE served_from_id IS NOT NULL AND state IN ('queued', 'running');
    CREATE INDEX batches_created ON batches (created_at);

    CREATE TABLE storage_orphans (
      storage_key text PRIMARY KEY,
      -- When the last asset naming it went (as far as this row knows: a later one may name it again).
      since timestamptz NOT NULL DEFAULT now(),
      -- Set when its object was deleted; the row stays a while as a tombstone.
      object_deleted_at timestamptz
    );
    CREATE INDEX storage_orphans_pending ON storage_orphans (since) WHERE object_deleted_at IS NULL;
    CREATE INDEX storage_orphans_tombstones ON storage_orphans (object_deleted_at) WHERE object_deleted_at IS NOT NULL;

    CREATE FUNCTION kiln_note_storage_orphans() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO storage_orphans (storage_key)
      SELECT DISTINCT storage_key FROM gone
      ON CONFLICT (storage_key) DO UPDATE SET since = now(), object_deleted_at = NULL;
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER assets_note_storage_orphans AFTER DELETE ON assets
      REFERENCING OLD TABLE AS gone
      FOR EACH STATEMENT EXECUTE FUNCTION kiln_note_storage_orphans();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER assets_note_storage_orphans ON assets;
    DROP FUNCTION kiln_note_storage_orphans();
    DROP TABLE storage_orphans;
    DROP INDEX batches_created;
    DROP INDEX generations_followers;
    CREATE INDEX generations_followers ON generations (served_from_id) WHERE served_from_id IS NOT NULL AND state = 'queued';
    DROP INDEX generations_finished;
  `.execute(db);
}
