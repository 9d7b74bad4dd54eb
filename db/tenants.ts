import { sql, type Kysely, type Transaction } from 'kysely';
import { createApiKey } from './api-keys.ts';
import type { Database, Tenant } from './schema.ts';

/** Any number held for the transaction while the first tenant is created; names nothing else. */
const FIRST_TENANT_LOCK = 7431001;

/**
 * On a database with no tenants, creates `name` with one API key and returns the key (only
 * its hash is stored); undefined when tenants exist. Processes starting at once create one.
 */
export async function createFirstTenant(db: Kysely<Database>, name: string, keyName: string): Promise<string | undefined> {
  return db.transaction().execute(async (trx: Transaction<Database>) => {
    await sql`SELECT pg_advisory_xact_lock(${FIRST_TENANT_LOCK})`.execute(trx);
    const existing = await trx.selectFrom('tenants').select('id').limit(1).executeTakeFirst();
    if (existing) return undefined;
    const tenant = await createTenant(trx, name);
    return (await createApiKey(trx, tenant.id, keyName)).key;
  });
}

export async function createTenant(db: Kysely<Database>, name: string, tier = 'standard'): Promise<Tenant> {
  return db.insertInto('tenants').values({ name, tier }).returningAll().executeTakeFirstOrThrow();
}

export async function findTenantByName(db: Kysely<Database>, name: string): Promise<Tenant | undefined> {
  return db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function findTenant(db: Kysely<Database>, idOrName: string): Promise<Tenant | undefined> {
  const isUuid = /^[0-9a-f-]{36}$/i.test(idOrName);
  return db.selectFrom('tenants').selectAll().where(isUuid ? 'id' : 'name', '=', idOrName).executeTakeFirst();
}
