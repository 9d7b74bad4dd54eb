import { sql, type Kysely } from 'kysely';

// A request may name who it is for within its tenant (an end user, a store): the subject. Fair
// share, rate limits and usage can then apply per subject, as each tenant chooses (share_by).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      -- Opaque to Kiln; null when the request named none. The API checks the same bound.
      ADD COLUMN subject text CONSTRAINT generations_subject_length CHECK (char_length(subject) BETWEEN 1 AND 200);
    -- list({ subject }): newest first per tenant and subject, with (created_at, id) as the
    -- cursor. Partial: tenants that name no subjects pay nothing for it.
    CREATE INDEX generations_tenant_subject_created ON generations (tenant_id, subject, created_at DESC, id DESC)
      WHERE subject IS NOT NULL;

    -- Copied from the generation like tenant_id and batch_id (it never changes), so an event's
    -- view shows it without a lookup per page of the feed.
    ALTER TABLE generation_events ADD COLUMN subject text;

    ALTER TABLE tenants
      -- What the fair share divides by: the tenant as a whole, or each of its subjects.
      ADD COLUMN share_by text NOT NULL DEFAULT 'tenant'
        CONSTRAINT tenants_share_by_known CHECK (share_by IN ('tenant', 'subject'));
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE tenants DROP COLUMN share_by;
    ALTER TABLE generation_events DROP COLUMN subject;
    DROP INDEX generations_tenant_subject_created;
    ALTER TABLE generations DROP COLUMN subject;
  `.execute(db);
}
