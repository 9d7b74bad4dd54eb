// Keys, for the operator: create (and the tenant with it, when new), list, revoke. The
// `admin.keys.*` procedures and the `keys` command both come here, so they behave alike.
// Tenants never manage keys themselves: a leaked key must not be able to mint its own
// successors or lock its tenant's other keys out (see README, "Keys and admin access").
import type { Kysely } from 'kysely';
import { createApiKey, listApiKeys, revokeApiKey, type CreatedApiKey } from '../db/api-keys.ts';
import type { Database, ShareBy, Tenant } from '../db/schema.ts';
import { findOrCreateTenant, findTenant } from '../db/tenants.ts';
import type { AdminCreateKeyInput, AdminKeyCreated, AdminKeyRevoked, AdminKeyView, AdminListKeysInput } from './api-types.ts';
import { conflict, notFound } from './errors.ts';
import type { KeyService } from './services.ts';

export interface NewKey {
  key: CreatedApiKey;
  tenant: Tenant;
  tenantCreated: boolean;
  /** Settings given for a tenant that existed (with other values), which therefore changed nothing. */
  ignored: ('tier' | 'shareBy')[];
}

/** A new key for the tenant of this name, created with `tier` and `shareBy` if it is new. */
export async function createKeyForTenant(db: Kysely<Database>, request: { tenant: string; name: string; tier?: string | undefined; shareBy?: ShareBy | undefined }): Promise<NewKey> {
  const { tenant, created } = await findOrCreateTenant(db, request.tenant, request.tier ?? 'standard', request.shareBy ?? 'tenant');
  const ignored = created
    ? []
    : [...(request.tier && tenant.tier !== request.tier ? (['tier'] as const) : []), ...(request.shareBy && tenant.share_by !== request.shareBy ? (['shareBy'] as const) : [])];
  return { key: await createApiKey(db, tenant.id, request.name), tenant, tenantCreated: created, ignored };
}

export function createKeyService(options: { db: Kysely<Database>; onRevoked: (keyId: string) => void }): KeyService {
  const { db } = options;
  return {
    async create(input: AdminCreateKeyInput): Promise<AdminKeyCreated> {
      const made = await createKeyForTenant(db, { ...input, name: input.name ?? 'created with admin.keys.create' });
      const { tenant } = made;
      return {
        key: made.key.key,
        keyId: made.key.id,
        prefix: made.key.prefix,
        tenant: { id: tenant.id, name: tenant.name, tier: tenant.tier, shareBy: tenant.share_by },
        tenantCreated: made.tenantCreated,
        ignored: made.ignored,
      };
    },
    async list(input: AdminListKeysInput): Promise<AdminKeyView[]> {
      const tenant = input.tenant === undefined ? undefined : await findTenant(db, input.tenant);
      if (input.tenant !== undefined && !tenant) throw notFound('tenant', input.tenant);
      const rows = await listApiKeys(db, tenant?.id);
      return rows.map((row) => ({
        id: row.id,
        prefix: row.prefix,
        name: row.name,
        tenantId: row.tenant_id,
        tenantName: row.tenant_name,
        createdAt: row.created_at,
        revokedAt: row.revoked_at,
      }));
    },
    async revoke(input): Promise<AdminKeyRevoked> {
      const outcome = await revokeApiKey(db, input.key);
      if (outcome.kind === 'not_found') throw notFound('active key', input.key);
      if (outcome.kind === 'ambiguous') throw conflict(`${outcome.matches} active keys start with ${input.key}; give the key id (see admin.keys.list)`);
      options.onRevoked(outcome.keyId);
      return { keyId: outcome.keyId, tenantId: outcome.tenantId };
    },
  };
}
