import { sql, type Kysely } from 'kysely';

// Tenants are addressed by name in the keys command; two with one name would be ambiguous.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE UNIQUE INDEX tenants_name ON tenants (name)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX tenants_name`.execute(db);
}
