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
 * Concurrent callers for the same bytes upload once: each takes an advisory lock on the key and
 * holds it while it uploads, so the next one waits and then finds the file just recorded. The
 * lock, not a row lock: a transaction that writes gets a transaction id, and one held open through
 * an upload would hold back the realtime event feed (db/events.ts releases events only below the
 * oldest running transaction id) for every tenant. So nothing is written until the file is known,
 * and the write comes last. A failed upload writes nothing.
 */
export async function claimProviderFile(
  db: Kysely<Database>,
  key: ProviderFileKey,
  marginSeconds: number,
  upload: () => Promise<KnownProviderFile>,
): Promise<{ file: KnownProviderFile; uploaded: boolean }> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`provider-file:${key.scope}:${key.contentHash}`}, 0))`.execute(trx);
    const live = await findLiveProviderFile(trx, key, marginSeconds);
    if (live) return { file: live, uploaded: false };
    const file = await upload();
    await trx
      .insertInto('provider_files')
      .values({ scope: key.scope, content_hash: key.contentHash, file_id: file.fileId, url: file.url, expires_at: file.expiresAt, uploaded_at: sql<Date>`now()`, uploads: 1 })
      .onConflict((conflict) =>
        conflict.columns(['scope', 'content_hash']).doUpdateSet((eb) => ({
          file_id: file.fileId,
          url: file.url,
          expires_at: file.expiresAt,
          uploaded_at: sql<Date>`now()`,
          uploads: eb('provider_files.uploads', '+', 1),
        })),
      )
      .execute();
    return { file, uploaded: true };
  });
}
