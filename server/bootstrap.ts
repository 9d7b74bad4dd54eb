// First-start conveniences: a default tenant with one development API key.
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { createFirstTenant } from '../db/tenants.ts';

/**
 * On a database with no tenants, creates tenant "default" and an API key for it.
 * Returns the key (shown once; only its hash is stored), or undefined when tenants exist.
 */
export function ensureDevelopmentKey(db: Kysely<Database>): Promise<string | undefined> {
  return createFirstTenant(db, 'default', 'development key (created on first start)');
}
