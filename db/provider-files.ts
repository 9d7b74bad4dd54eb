// Input images uploaded to the provider (migration 0019): one row per provider account and image
// content, naming the provider's file while it lives. Reused while it lives long enough; uploaded
// again once it does not, by one uploader at a time. Nothing here knows how the upload is made.
import { sql, type Kysely } from 'kysely';
import type { Database, Db } from './schema.ts';

export interface ProviderFileKey {
  scope: string;
  contentHash: string;
}

export interface KnownProviderFile {
  fileId: string;
  url: string;
  expiresAt: Date;
}

/** The provider's file of these bytes, if it lives at least `marginSeconds` more (the hot path: one index read, no lock). */
export async function findLiveProviderFile(db: Db, key: ProviderFileKey, marginSeconds: number): Promise<KnownProviderFile | undefined> {
  const row = await db
    .selectFrom('provider_files')
    .select(['file_id', 'url', 'expires_at'])
    .where('scope', '=', key.scope)
    .where('content_hash', '=', key.contentHash)
    .where('expires_at', '>', sql<Date>`now() + make_interval(secs => ${marginSeconds})`)
    .executeTakeFirst();
  return row?.file_id && row.url && row.expires_at ? { fileId: row.file_id, url: row.url, expiresAt: row.expires_at } : undefined;
}

/**
 * The provider's file of these bytes, uploading it (with `upload`) unless a live one is known.
 * Concurrent callers for the same bytes upload once: each claims the row (inserted if new) and
 * holds its lock while it uploads, so the next one waits and then finds the file just recorded.
 * A failed upload rolls the claim back and leaves the row as it was.
 */
export async function claimProviderFile(
  db: Kysely<Database>,
  key: ProviderFileKey,
  marginSeconds: number,
  upload: () => Promise<KnownProviderFile>,
): Promise<{ file: KnownProviderFile; uploaded: boolean }> {
  return db.transaction().execute(async (trx) => {
    await trx.insertInto('provider_files').values({ scope: key.scope, content_hash: key.contentHash }).onConflict((conflict) => conflict.doNothing()).execute();
    const row = await trx
      .selectFrom('provider_files')
      .select(['file_id', 'url', 'expires_at', sql<boolean>`expires_at > now() + make_interval(secs => ${marginSeconds})`.as('live')])
      .where('scope', '=', key.scope)
      .where('content_hash', '=', key.contentHash)
      .forUpdate()
      .executeTakeFirstOrThrow();
    if (row.live && row.file_id && row.url && row.expires_at) return { file: { fileId: row.file_id, url: row.url, expiresAt: row.expires_at }, uploaded: false };
    const file = await upload();
    await trx
      .updateTable('provider_files')
      .set((eb) => ({ file_id: file.fileId, url: file.url, expires_at: file.expiresAt, uploaded_at: sql<Date>`now()`, uploads: eb('uploads', '+', 1) }))
      .where('scope', '=', key.scope)
      .where('content_hash', '=', key.contentHash)
      .execute();
    return { file, uploaded: true };
  });
}
