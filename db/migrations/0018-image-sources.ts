import { sql, type Kysely } from 'kysely';

// Image sources: images a tenant uploads or names by URL, for operations that start from an
// image (db/image-sources.ts). Each is stored once per tenant: the bytes' SHA-256 is unique
// within a tenant, so the same image uploaded again is the same source, reusable by id. The
// object lives in the asset store under the same content-addressed key an asset of those
// bytes would have, so a source and an asset of one image share one object.
//
// Retention: a source names its key as an asset does. A deleted source's key becomes an
// orphan (the same trigger function as 0016's), and an orphaned key that a source still names
// is not deleted (db/retention.ts). Tenants gain the hosts their URL sources may come from.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE image_sources (
      id uuid PRIMARY KEY,
      tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
      storage_key text NOT NULL,
      format text NOT NULL CHECK (format IN ('png', 'jpeg', 'webp', 'avif')),
      width integer NOT NULL CHECK (width > 0),
      height integer NOT NULL CHECK (height > 0),
      bytes integer NOT NULL CHECK (bytes > 0),
      origin text NOT NULL CHECK (origin IN ('upload', 'url')),
      -- The URL a URL source was fetched from, as the tenant named it; null for uploads.
      url text CHECK ((origin = 'url') = (url IS NOT NULL)),
      -- The name an upload came with, as a person would recognise it; null when it had none.
      filename text CHECK (char_length(filename) BETWEEN 1 AND 255),
      created_at timestamptz NOT NULL DEFAULT now(),
      -- Stored once per tenant; also the lookup of a repeated upload.
      CONSTRAINT image_sources_tenant_content UNIQUE (tenant_id, content_hash)
    );
    -- A lookup by id uses the primary key and checks the tenant (another tenant's id finds nothing);
    -- this one walks a tenant's sources in id order (UUIDv7: creation order), for listing them.
    CREATE INDEX image_sources_tenant_id ON image_sources (tenant_id, id);
    -- Retention asks whether any source still names an orphaned key.
    CREATE INDEX image_sources_storage_key ON image_sources (storage_key);
    CREATE TRIGGER image_sources_note_storage_orphans AFTER DELETE ON image_sources
      REFERENCING OLD TABLE AS gone
      FOR EACH STATEMENT EXECUTE FUNCTION kiln_note_storage_orphans();

    -- Hosts a tenant's URL sources may be fetched from: 'shop.example' exactly, '*.shop.example'
    -- any host below it. Empty: URL sources are off for the tenant (uploads still work).
    ALTER TABLE tenants ADD COLUMN source_hosts text[] NOT NULL DEFAULT '{}';
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE tenants DROP COLUMN source_hosts;
    DROP TRIGGER image_sources_note_storage_orphans ON image_sources;
    DROP TABLE image_sources;
  `.execute(db);
}
