// Provider files: concurrent claims of one image upload it once, and an upload in flight holds
// no transaction id (which would hold back the realtime event feed for every tenant).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase } from '../test/support/kiln.ts';
import { openDatabase, type DatabaseHandle } from './database.ts';
import { migrateToLatest } from './migrate.ts';
import { claimProviderFile, findLiveProviderFile } from './provider-files.ts';

const HOUR_MS = 3_600_000;

describe('provider files', () => {
  let database: DatabaseHandle;
  before(async () => {
    database = openDatabase({ connectionString: await createTestDatabase(), maxConnections: 8 });
    await migrateToLatest(database.db);
  });
  after(() => database.close());

  it('uploads an image once for concurrent claims, without holding a transaction id while it uploads', async () => {
    const key = { scope: 'test-account', contentHash: 'c'.repeat(64) };
    let uploads = 0;
    const xidsDuringUpload: (string | null)[] = [];
    const upload = async () => {
      uploads += 1;
      await sleep(200);
      const { rows } = await sql<{ backend_xid: string | null }>`
        SELECT backend_xid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      `.execute(database.db);
      xidsDuringUpload.push(...rows.map((row) => row.backend_xid));
      return { fileId: 'file-1', url: 'https://provider.test/files/file-1', expiresAt: new Date(Date.now() + 24 * HOUR_MS) };
    };
    const claims = await Promise.all(Array.from({ length: 5 }, () => claimProviderFile(database.db, key, 3600, upload)));

    assert.equal(uploads, 1, 'uploaded once');
    assert.deepEqual(claims.map((claim) => claim.uploaded).sort(), [false, false, false, false, true]);
    assert.ok(claims.every((claim) => claim.file.fileId === 'file-1'));
    assert.deepEqual(xidsDuringUpload.filter((xid) => xid !== null), [], 'no transaction id is held while the upload runs');
    assert.equal((await findLiveProviderFile(database.db, key, 3600))?.fileId, 'file-1');
  });

  it('uploads again once the file would not live long enough, and counts the uploads', async () => {
    const key = { scope: 'test-account', contentHash: 'd'.repeat(64) };
    const file = (id: string, livesMs: number) => async () => ({ fileId: id, url: `https://provider.test/files/${id}`, expiresAt: new Date(Date.now() + livesMs) });
    await claimProviderFile(database.db, key, 3600, file('short', HOUR_MS / 2));
    const again = await claimProviderFile(database.db, key, 3600, file('fresh', 24 * HOUR_MS));
    assert.deepEqual([again.uploaded, again.file.fileId], [true, 'fresh'], 'half an hour left is under the margin');
    const { rows } = await sql<{ uploads: number }>`SELECT uploads FROM provider_files WHERE scope = ${key.scope} AND content_hash = ${key.contentHash}`.execute(database.db);
    assert.equal(rows[0]?.uploads, 2);
  });

  it('writes nothing when the upload fails', async () => {
    const key = { scope: 'test-account', contentHash: 'e'.repeat(64) };
    await assert.rejects(claimProviderFile(database.db, key, 3600, () => Promise.reject(new Error('provider down'))), /provider down/);
    const { rows } = await sql<{ n: string }>`SELECT count(*) AS n FROM provider_files WHERE content_hash = ${key.contentHash}`.execute(database.db);
    assert.equal(Number(rows[0]?.n), 0);
  });
});
