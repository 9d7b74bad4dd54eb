import { sql, type Kysely } from 'kysely';

// Rows written before deadlines and poll numbers were kept get them now, so that no code
// needs a branch for their absence.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Such rows counted their deadline from creation with the worker's default of the day (600 s).
    UPDATE generations SET deadline_at = created_at + interval '600 seconds' WHERE deadline_at IS NULL;
    -- No poll of theirs is numbered yet: the next one to run is the first.
    UPDATE generations SET poll_seq = 0 WHERE poll_seq IS NULL;
    ALTER TABLE generations
      ALTER COLUMN deadline_at SET NOT NULL,
      ALTER COLUMN poll_seq SET DEFAULT 0,
      ALTER COLUMN poll_seq SET NOT NULL,
      -- The provider's statuses are a closed list (Replicate's), as the code reads them.
      ADD CONSTRAINT generations_provider_status_known
        CHECK (provider_status IN ('starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'));
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      DROP CONSTRAINT generations_provider_status_known,
      ALTER COLUMN poll_seq DROP NOT NULL,
      ALTER COLUMN poll_seq DROP DEFAULT,
      ALTER COLUMN deadline_at DROP NOT NULL;
  `.execute(db);
}
