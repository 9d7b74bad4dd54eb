import { sql, type Kysely } from 'kysely';

// `batch` takes an idempotency key as `generate` does: a repeated key answers with the first
// batch when the request is the same (its hash), and is refused when it is not. Keys are
// remembered for a configured time; an expired key is released when it is used again.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE batches
      ADD COLUMN idempotency_key text,
      -- sha256 of the request as validated (without the key): "the same request" for a repeated key.
      ADD COLUMN request_hash text;
    CREATE UNIQUE INDEX batches_idempotency ON batches (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP INDEX batches_idempotency;
    ALTER TABLE batches DROP COLUMN idempotency_key, DROP COLUMN request_hash;
  `.execute(db);
}
