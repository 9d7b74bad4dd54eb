// Image sources (migration 0018): one row per tenant and content, its object in the asset
// store under the content-addressed key. Stored once: a repeat of the same bytes answers the
// row that is there. Nothing here knows of HTTP or of how the bytes were checked.
import type { Kysely } from 'kysely';
import type { Database, Db, ImageSource, NewImageSource } from './schema.ts';

export interface StoredSource {
  source: ImageSource;
  /** True when the tenant had these bytes already: the earlier source is answered, nothing was written. */
  deduplicated: boolean;
}

/**
 * Records a source whose object is stored already, unless the tenant has one of the same
 * content (then that one is answered). In the same transaction its key stops being an orphan
 * (migration 0016): `restore` runs when retention had taken it as one, since its object may
 * have been deleted after the caller stored it, and must put the bytes back before this commits.
 */
export async function recordImageSource(db: Kysely<Database>, row: NewImageSource, restore: () => Promise<void>): Promise<StoredSource> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('image_sources')
      .values(row)
      .onConflict((conflict) => conflict.constraint('image_sources_tenant_content').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!inserted) {
      // The row that won holds the key, and its own transaction reclaimed it.
      const existing = await trx
        .selectFrom('image_sources')
        .selectAll()
        .where('tenant_id', '=', row.tenant_id)
        .where('content_hash', '=', row.content_hash)
        .executeTakeFirstOrThrow();
      return { source: existing, deduplicated: true };
    }
    const reclaimed = await trx.deleteFrom('storage_orphans').where('storage_key', '=', inserted.storage_key).returning('storage_key').executeTakeFirst();
    if (reclaimed) await restore();
    return { source: inserted, deduplicated: false };
  });
}

/** The tenant's source with this content, if it has one: a repeat is answered without storing anything. */
export async function findImageSourceByContent(db: Db, tenantId: string, contentHash: string): Promise<ImageSource | undefined> {
  return db.selectFrom('image_sources').selectAll().where('tenant_id', '=', tenantId).where('content_hash', '=', contentHash).executeTakeFirst();
}

/** One of the tenant's sources; another tenant's id finds nothing, as a missing one does. */
export async function findImageSource(db: Db, tenantId: string, id: string): Promise<ImageSource | undefined> {
  return db.selectFrom('image_sources').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
}

/** Hosts the tenant's URL sources may come from (empty: none); undefined when there is no such tenant. */
export async function findTenantSourceHosts(db: Db, tenantId: string): Promise<string[] | undefined> {
  const row = await db.selectFrom('tenants').select('source_hosts').where('id', '=', tenantId).executeTakeFirst();
  return row?.source_hosts;
}

/** The tenant's sources among `ids` (one query for a whole batch); ids of another tenant find nothing. */
export async function findImageSources(db: Db, tenantId: string, ids: readonly string[]): Promise<ImageSource[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('image_sources').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
}
