import { hash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** Keys look like `kiln_sk_<43 base64url chars>`: recognisable in logs and secret scanners. */
const KEY_PREFIX = 'kiln_sk_';

export function hashApiKey(key: string): Buffer {
  return hash('sha256', key, 'buffer');
}

export interface CreatedApiKey {
  id: string;
  tenantId: string;
  /** The only time the full key exists outside the caller's hands: it is stored hashed. */
  key: string;
  prefix: string;
}

export async function createApiKey(db: Kysely<Database>, tenantId: string, name: string): Promise<CreatedApiKey> {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const prefix = key.slice(0, KEY_PREFIX.length + 6);
  const row = await db
    .insertInto('api_keys')
    .values({ tenant_id: tenantId, key_hash: hashApiKey(key), prefix, name, revoked_at: null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, tenantId, key, prefix };
}

export interface AuthenticatedKey {
  keyId: string;
  tenantId: string;
  tenantTier: string;
}

const activeKeys = (db: Kysely<Database>) =>
  db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select(['api_keys.id as keyId', 'api_keys.tenant_id as tenantId', 'tenants.tier as tenantTier'])
    .where('api_keys.revoked_at', 'is', null);

/** Finds the live key with this value; revoked and unknown keys both answer undefined. */
export async function findActiveApiKey(db: Kysely<Database>, key: string): Promise<AuthenticatedKey | undefined> {
  if (!key.startsWith(KEY_PREFIX)) return undefined;
  return activeKeys(db).where('api_keys.key_hash', '=', hashApiKey(key)).executeTakeFirst();
}

/** The live key with this id (a token names the key that minted it); undefined once revoked. */
export async function findActiveApiKeyById(db: Kysely<Database>, keyId: string): Promise<AuthenticatedKey | undefined> {
  return activeKeys(db).where('api_keys.id', '=', keyId).executeTakeFirst();
}

export type RevokeOutcome = { kind: 'revoked'; keyId: string; tenantId: string } | { kind: 'not_found' } | { kind: 'ambiguous'; matches: number };

/** Revokes one active key, named by its id or by a prefix that matches no other active key. */
export async function revokeApiKey(db: Kysely<Database>, keyIdOrPrefix: string): Promise<RevokeOutcome> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(keyIdOrPrefix);
  const matches = await db
    .selectFrom('api_keys')
    .select(['id', 'tenant_id'])
    .where(isUuid ? 'id' : 'prefix', '=', keyIdOrPrefix)
    .where('revoked_at', 'is', null)
    .execute();
  const [match] = matches;
  if (!match) return { kind: 'not_found' };
  if (matches.length > 1) return { kind: 'ambiguous', matches: matches.length };
  await db.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', match.id).execute();
  return { kind: 'revoked', keyId: match.id, tenantId: match.tenant_id };
}

export async function listApiKeys(db: Kysely<Database>, tenantId?: string) {
  let query = db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select(['api_keys.id', 'api_keys.prefix', 'api_keys.name', 'api_keys.created_at', 'api_keys.revoked_at', 'tenants.id as tenant_id', 'tenants.name as tenant_name'])
    .orderBy('api_keys.created_at');
  if (tenantId) query = query.where('api_keys.tenant_id', '=', tenantId);
  return query.execute();
}
