import type { Kysely } from 'kysely';
import type { Database, Tenant } from './schema.ts';

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
