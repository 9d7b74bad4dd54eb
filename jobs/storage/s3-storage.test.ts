// The S3 adapter against an S3-compatible server started here: bytes come back exactly, a key
// is written once, deletes are idempotent, and a bucket that is not there fails the check.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../server/config.ts';
import { startTestBucket, type TestBucket } from '../../test/support/s3.ts';
import { createS3Storage } from './s3-storage.ts';
import type { AssetStorage } from './storage.ts';

const keyOf = (bytes: Buffer, extension = 'png') => `${createHash('sha256').update(bytes).digest('hex')}.${extension}`;

function storageFor(bucket: TestBucket, env: Record<string, string> = {}): AssetStorage {
  const settings = loadConfig({ ...bucket.env, ...env }).storage;
  assert.equal(settings.kind, 's3');
  return createS3Storage(settings);
}

describe('S3 storage', () => {
  let bucket: TestBucket;
  let storage: AssetStorage;
  before(async () => {
    bucket = await startTestBucket({ prefix: 'assets/' });
    storage = storageFor(bucket);
    await storage.check();
  });
  after(async () => {
    storage.close();
    await bucket.stop();
  });

  it('gives back every byte it was given, small and large, under the prefix', async () => {
    for (const size of [0, 1, 65_537, 6 * 1024 * 1024 + 3]) {
      const bytes = randomBytes(size);
      const key = keyOf(bytes);
      await storage.put(key, bytes);
      const stored = await storage.open(key);
      assert.ok(stored, `${size} bytes stored`);
      assert.equal(stored.size, size);
      const back = await buffer(stored.stream());
      assert.ok(back.equals(bytes), `${size} bytes come back byte for byte`);
      assert.ok((await bucket.keys()).includes(`assets/${key}`));
    }
  });

  it('stores a key once: a second put under that key writes nothing', async () => {
    const bytes = randomBytes(1000);
    const key = keyOf(bytes, 'webp');
    await storage.put(key, bytes);
    // Keys name their content, so other bytes never come under one; here they show whether the second put wrote.
    await storage.put(key, randomBytes(1000));
    const stored = await storage.open(key);
    assert.ok(stored);
    assert.ok((await buffer(stored.stream())).equals(bytes));
  });

  it('answers undefined for a key it does not hold, or one that is not a storage key', async () => {
    assert.equal(await storage.open(`${'0'.repeat(64)}.png`), undefined);
    assert.equal(await storage.open('../etc/passwd'), undefined);
  });

  it('deletes, and deleting what is not there is no error', async () => {
    const bytes = randomBytes(100);
    const key = keyOf(bytes, 'avif');
    await storage.put(key, bytes);
    await storage.delete([key, key, `${'1'.repeat(64)}.jpg`]);
    assert.equal(await storage.open(key), undefined);
    assert.ok(!(await bucket.keys()).includes(`assets/${key}`));
  });

  it('also works with only the checksums the API requires (for stores that mishandle the defaults)', async () => {
    const plain = storageFor(bucket, { KILN_S3_CHECKSUMS: 'when-required' });
    const bytes = randomBytes(300_000);
    const key = keyOf(bytes, 'jpg');
    await plain.put(key, bytes);
    const stored = await plain.open(key);
    assert.ok(stored && (await buffer(stored.stream())).equals(bytes));
    plain.close();
  });

  it('fails its check, naming the bucket, when the bucket is not there', async () => {
    const missing = storageFor(bucket, { KILN_S3_BUCKET: 'no-such-bucket' });
    await assert.rejects(missing.check(), /no-such-bucket cannot be reached/);
    missing.close();
  });
});
