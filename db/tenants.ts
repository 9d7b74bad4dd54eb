import { sql, type Kysely, type Transaction } from 'kysely';
import { createApiKey } from './api-keys.ts';
import type { Database, Db, ShareBy, Tenant } from './schema.ts';

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

export async function createTenant(db: Kysely<Database>, name: string, tier = 'standard', shareBy: ShareBy = 'tenant'): Promise<Tenant> {
  return db.insertInto('tenants').values({ name, tier, share_by: shareBy }).returningAll().executeTakeFirstOrThrow();
}

/** The tenant named `name`, created with these settings when there is none (at once from several callers: one). */
export async function findOrCreateTenant(db: Kysely<Database>, name: string, tier: string, shareBy: ShareBy): Promise<{ tenant: Tenant; created: boolean }> {
  const inserted = await db
    .insertInto('tenants')
    .values({ name, tier, share_by: shareBy })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return { tenant: inserted, created: true };
  return { tenant: await db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirstOrThrow(), created: false };
}

export async function findTenantByName(db: Kysely<Database>, name: string): Promise<Tenant | undefined> {
  return db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function findTenant(db: Kysely<Database>, idOrName: string): Promise<Tenant | undefined> {
  const isUuid = /^[0-9a-f-]{36}$/i.test(idOrName);
  return db.selectFrom('tenants').selectAll().where(isUuid ? 'id' : 'name', '=', idOrName).executeTakeFirst();
}

export interface TenantChanges {
  tier?: string | undefined;
  shareBy?: ShareBy | undefined;
  /** Its own cap on generations in progress; null: back to the configured default. */
  inProgressCap?: number | null | undefined;
  /** Its own request limits (null: back to its tier's), and a limit per subject (null: none). */
  requestsPerMinute?: number | null | undefined;
  requestBurst?: number | null | undefined;
  subjectRequestsPerMinute?: number | null | undefined;
  subjectRequestBurst?: number | null | undefined;
  /** Hosts its URL sources may come from, as normalised patterns; null or empty: none. */
  sourceHosts?: readonly string[] | null | undefined;
}

/** Changes a tenant's settings; undefined when no tenant has this id. */
export async function updateTenant(db: Db, tenantId: string, changes: TenantChanges): Promise<Tenant | undefined> {
  const set = {
    ...(changes.tier ? { tier: changes.tier } : {}),
    ...(changes.shareBy ? { share_by: changes.shareBy } : {}),
    ...(changes.inProgressCap !== undefined ? { in_progress_cap: changes.inProgressCap } : {}),
    ...(changes.requestsPerMinute !== undefined ? { requests_per_minute: changes.requestsPerMinute } : {}),
    ...(changes.requestBurst !== undefined ? { request_burst: changes.requestBurst } : {}),
    ...(changes.subjectRequestsPerMinute !== undefined ? { subject_requests_per_minute: changes.subjectRequestsPerMinute } : {}),
    ...(changes.subjectRequestBurst !== undefined ? { subject_request_burst: changes.subjectRequestBurst } : {}),
    ...(changes.sourceHosts !== undefined ? { source_hosts: [...(changes.sourceHosts ?? [])] } : {}),
  };
  if (Object.keys(set).length === 0) return db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst();
  return db.updateTable('tenants').set(set).where('id', '=', tenantId).returningAll().executeTakeFirst();
}

export interface TenantListing extends Tenant {
  activeKeys: number;
}

/** Every tenant, oldest first, with how many of its keys work. */
export async function listTenants(db: Db): Promise<TenantListing[]> {
  const rows = await db
    .selectFrom('tenants')
    .leftJoin('api_keys', (join) => join.onRef('api_keys.tenant_id', '=', 'tenants.id').on('api_keys.revoked_at', 'is', null))
    .selectAll('tenants')
    .select((eb) => eb.fn.count<string>('api_keys.id').as('active_keys'))
    .groupBy('tenants.id')
    .orderBy('tenants.created_at')
    .orderBy('tenants.name')
    .execute();
  return rows.map(({ active_keys, ...tenant }) => ({ ...tenant, activeKeys: Number(active_keys) }));
}

/** What scheduling needs to know of a tenant: its tier (weight) and what its share divides by. */
export interface TenantSettings {
  tenantId: string;
  tier: string;
  shareBy: ShareBy;
}

export async function findTenantSettings(db: Db, tenantId: string): Promise<TenantSettings | undefined> {
  return (await listTenantSettings(db, [tenantId])).get(tenantId);
}

/** The settings of several tenants in one query (e.g. those with work waiting), by tenant id. */
export async function listTenantSettings(db: Db, tenantIds: readonly string[]): Promise<Map<string, TenantSettings>> {
  if (tenantIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('tenants')
    .select(['id as tenantId', 'tier', 'share_by as shareBy'])
    .where('id', 'in', tenantIds)
    .execute();
  return new Map(rows.map((row) => [row.tenantId, row]));
}

/** A tenant's own request limits (null where its tier's apply) and its tier. */
export interface TenantRequestLimits {
  tier: string;
  requestsPerMinute: number | null;
  requestBurst: number | null;
  subjectRequestsPerMinute: number | null;
  subjectRequestBurst: number | null;
}

export async function findTenantRequestLimits(db: Db, tenantId: string): Promise<TenantRequestLimits | undefined> {
  return db
    .selectFrom('tenants')
    .select([
      'tier',
      'requests_per_minute as requestsPerMinute',
      'request_burst as requestBurst',
      'subject_requests_per_minute as subjectRequestsPerMinute',
      'subject_request_burst as subjectRequestBurst',
    ])
    .where('id', '=', tenantId)
    .executeTakeFirst();
}
