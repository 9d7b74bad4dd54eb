import { sql, type Kysely } from 'kysely';

// Input images uploaded to the provider (Replicate's Files API), so an image reaches the provider
// once and its URL is reused while the file lives (24 h on Replicate), however many generations
// and retries start from it (db/provider-files.ts). One row per provider account (`scope`) and
// image content; concurrent creates of one image upload it once (see db/provider-files.ts).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE provider_files (
      -- The provider account the file belongs to (its endpoint and a hash of its token): files of
      -- one account are not readable by another's predictions.
      scope text NOT NULL,
      content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
      -- Null until the first upload commits (the row exists to be locked by the uploader).
      file_id text,
      url text,
      expires_at timestamptz,
      uploaded_at timestamptz,
      -- How many times these bytes went to the provider: once per file lifetime.
      uploads integer NOT NULL DEFAULT 0,
      PRIMARY KEY (scope, content_hash),
      CHECK ((file_id IS NULL) = (url IS NULL) AND (url IS NULL) = (expires_at IS NULL))
    );
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE provider_files;`.execute(db);
}
