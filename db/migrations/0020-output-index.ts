import { sql, type Kysely } from 'kysely';

// Several outputs per generation: a model that takes num_outputs makes up to four images in one
// prediction, and each is an original with variants of its own. An asset names which output it
// belongs to (0 for every asset before this: one output each); a generation has one asset per
// output, kind, platform and format.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE assets ADD COLUMN output_index smallint NOT NULL DEFAULT 0 CHECK (output_index BETWEEN 0 AND 3);
    DROP INDEX assets_unique_variant;
    CREATE UNIQUE INDEX assets_unique_variant ON assets (generation_id, output_index, kind, coalesce(platform, ''), format);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DELETE FROM assets WHERE output_index > 0;
    DROP INDEX assets_unique_variant;
    CREATE UNIQUE INDEX assets_unique_variant ON assets (generation_id, kind, coalesce(platform, ''), format);
    ALTER TABLE assets DROP COLUMN output_index;
  `.execute(db);
}
