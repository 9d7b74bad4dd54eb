import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Server-side secrets every API process shares (e.g. the key that signs scoped tokens).
    CREATE TABLE kiln_secrets (
      name text PRIMARY KEY,
      value bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    -- Queue position: how many queued generations of the same model run before this one
    -- (workers take higher priority first, then older first).
    CREATE INDEX generations_queued_lane ON generations (model, priority DESC, created_at, id) WHERE state = 'queued';
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP INDEX generations_queued_lane;
    DROP TABLE kiln_secrets;
  `.execute(db);
}
