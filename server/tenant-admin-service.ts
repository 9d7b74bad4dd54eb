// Tenants, for the operator: every setting `tenants set` changes, and credit grants. The
// `admin.tenants.*` procedures come here; the CLI writes through the same db/ functions.
import type { Kysely } from 'kysely';
import { findCreditBalance, grantCredits, toMicroUsd, toUsd } from '../db/credits.ts';
import type { Database, Tenant } from '../db/schema.ts';
import { findTenant, listTenants, updateTenant } from '../db/tenants.ts';
import type { AdminTenantDetail } from './api-types.ts';
import { notFound } from './errors.ts';
import type { TenantAdminService } from './services.ts';

export function createTenantAdminService(options: { db: Kysely<Database> }): TenantAdminService {
  const { db } = options;

  async function detail(tenant: Tenant): Promise<AdminTenantDetail> {
    const balance = await findCreditBalance(db, tenant.id);
    return {
      id: tenant.id,
      name: tenant.name,
      tier: tenant.tier,
      shareBy: tenant.share_by,
      inProgressCap: tenant.in_progress_cap,
      requestsPerMinute: tenant.requests_per_minute,
      requestBurst: tenant.request_burst,
      subjectRequestsPerMinute: tenant.subject_requests_per_minute,
      subjectRequestBurst: tenant.subject_request_burst,
      sourceHosts: tenant.source_hosts,
      credit: balance ? { availableUsd: toUsd(balance.available), heldUsd: toUsd(balance.held) } : null,
      createdAt: tenant.created_at,
    };
  }

  async function tenantNamed(nameOrId: string): Promise<Tenant> {
    const tenant = await findTenant(db, nameOrId);
    if (!tenant) throw notFound('tenant', nameOrId);
    return tenant;
  }

  return {
    async list() {
      return Promise.all((await listTenants(db)).map(detail));
    },
    async set({ tenant: nameOrId, ...changes }) {
      const tenant = await tenantNamed(nameOrId);
      const updated = await updateTenant(db, tenant.id, changes);
      if (!updated) throw notFound('tenant', nameOrId);
      return detail(updated);
    },
    async grant(input) {
      const tenant = await tenantNamed(input.tenant);
      await grantCredits(db, tenant.id, toMicroUsd(input.usd), input.note ?? null);
      return detail(tenant);
    },
  };
}
