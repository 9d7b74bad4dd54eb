// First-start conveniences: a default tenant with one development API key.
import { sql, type Kysely } from 'kysely';
import { createApiKey } from '../db/api-keys.ts';
import type { Database } from '../db/schema.ts';
import { createTenant } from '../db/tenants.ts';

/**
 * On a database with no tenants, creates tenant "default" and an API key for it.
 * Returns the key (shown once; only its hash is stored), or undefined when tenants exist.
 */
export async function ensureDevelopmentKey(db: Kysely<Database>): Promise<string | undefined> {
  return db.transaction().execute(async (trx) => {
    // Two processes starting at once must not both create the default tenant.
    await sql`SELECT pg_advisory_xact_lock(7431001)`.execute(trx);
    const existing = await trx.selectFrom('tenants').select('id').limit(1).executeTakeFirst();
    if (existing) return undefined;
    const tenant = await createTenant(trx, 'default');
    const key = await createApiKey(trx, tenant.id, 'development key (created on first start)');
    return key.key;
  });
}
