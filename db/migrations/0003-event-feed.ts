import { sql, type Kysely } from 'kysely';

// The event log becomes a feed that API processes follow:
// - `xid` records the writing transaction. Readers take an event only once every transaction
//   that could still commit an earlier one has ended (xid < the snapshot's xmin), so the feed
//   is read in one order — (xid, id) — with no gaps and no repeats, and a position in it is a
//   resume point.
// - A statement-level trigger NOTIFYs `kiln_events` when events are written; NOTIFY is
//   delivered at commit, and identical notifications in one transaction collapse into one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generation_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
    CREATE INDEX generation_events_position ON generation_events (xid, id);
    CREATE INDEX generation_events_batch ON generation_events (batch_id, xid, id) WHERE batch_id IS NOT NULL;
    CREATE INDEX generation_events_tenant_position ON generation_events (tenant_id, xid, id);
    DROP INDEX generation_events_tenant;

    CREATE FUNCTION kiln_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('kiln_events', '');
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER generation_events_notify AFTER INSERT ON generation_events
      FOR EACH STATEMENT EXECUTE FUNCTION kiln_notify_events();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER generation_events_notify ON generation_events;
    DROP FUNCTION kiln_notify_events();
    CREATE INDEX generation_events_tenant ON generation_events (tenant_id, id);
    DROP INDEX generation_events_tenant_position;
    DROP INDEX generation_events_batch;
    DROP INDEX generation_events_position;
    ALTER TABLE generation_events DROP COLUMN xid;
  `.execute(db);
}
