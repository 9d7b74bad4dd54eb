import { sql, type Kysely } from 'kysely';

// Written in SQL rather than the schema builder: constraints and partial indexes
// read more plainly this way, and db/schema.ts carries the types.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE tenants (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL,
      tier text NOT NULL DEFAULT 'standard',
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE api_keys (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      key_hash bytea NOT NULL UNIQUE,
      prefix text NOT NULL,
      name text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      revoked_at timestamptz
    );
    CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

    CREATE TABLE batches (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      item_count integer NOT NULL CHECK (item_count > 0),
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE generations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
      batch_id uuid REFERENCES batches(id) ON DELETE CASCADE,
      state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
      stage text NOT NULL DEFAULT 'queued',
      prompt text NOT NULL,
      model text NOT NULL,
      request jsonb NOT NULL,
      priority integer NOT NULL DEFAULT 0,
      idempotency_key text,
      attempt integer NOT NULL DEFAULT 0,
      prediction_id text,
      error_code text,
      error_message text,
      created_at timestamptz NOT NULL DEFAULT now(),
      started_at timestamptz,
      finished_at timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    -- list(): newest first per tenant, with (created_at, id) as the cursor.
    CREATE INDEX generations_tenant_created ON generations (tenant_id, created_at DESC, id DESC);
    CREATE INDEX generations_batch ON generations (batch_id) WHERE batch_id IS NOT NULL;
    CREATE UNIQUE INDEX generations_idempotency ON generations (tenant_id, idempotency_key)
      WHERE idempotency_key IS NOT NULL;

    CREATE TABLE generation_events (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      generation_id uuid NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
      tenant_id uuid NOT NULL,
      batch_id uuid,
      stage text NOT NULL,
      data jsonb NOT NULL DEFAULT '{}',
      at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX generation_events_generation ON generation_events (generation_id, id);
    CREATE INDEX generation_events_tenant ON generation_events (tenant_id, id);

    CREATE TABLE assets (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      generation_id uuid NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
      tenant_id uuid NOT NULL,
      kind text NOT NULL CHECK (kind IN ('original', 'variant')),
      platform text,
      format text NOT NULL,
      width integer NOT NULL,
      height integer NOT NULL,
      bytes integer NOT NULL,
      content_hash text NOT NULL,
      storage_key text NOT NULL,
      content_type text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    -- One asset per (generation, platform, format): a retried render replaces nothing twice.
    CREATE UNIQUE INDEX assets_unique_variant
      ON assets (generation_id, kind, coalesce(platform, ''), format);
    CREATE INDEX assets_storage_key ON assets (storage_key);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE assets, generation_events, generations, batches, api_keys, tenants;
  `.execute(db);
}
