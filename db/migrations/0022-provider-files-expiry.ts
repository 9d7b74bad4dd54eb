import { sql, type Kysely } from 'kysely';

// Retention prunes provider files once they expire (the provider has deleted them by then): an
// index on the expiry makes each batch a range read, however many images a tenant has sent.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX provider_files_expiry ON provider_files (expires_at) WHERE expires_at IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX provider_files_expiry`.execute(db);
}
