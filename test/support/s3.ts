// An S3-compatible server in this process (fauxqs), with one empty bucket: a test's own store.
// It checks no signatures, so any credentials do.
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import type { Environment } from '../../server/config.ts';

export interface TestBucket {
  endpoint: string;
  bucket: string;
  /** The variables that point Kiln at this bucket. */
  env: Environment;
  /** Every object key in the bucket. */
  keys(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startTestBucket(options: { prefix?: string } = {}): Promise<TestBucket> {
  const server = await startFauxqs({ port: 0, logger: false });
  const bucket = `kiln-test-${randomBytes(4).toString('hex')}`;
  server.createBucket(bucket);
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
  const client = new S3Client({ endpoint: server.address, region: 'us-east-1', forcePathStyle: true, credentials });
  return {
    endpoint: server.address,
    bucket,
    env: {
      KILN_STORAGE: 's3',
      KILN_S3_BUCKET: bucket,
      KILN_S3_ENDPOINT: server.address,
      KILN_S3_ACCESS_KEY_ID: credentials.accessKeyId,
      KILN_S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      ...(options.prefix ? { KILN_S3_PREFIX: options.prefix } : {}),
    },
    async keys() {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : [])));
        token = page.NextContinuationToken;
      } while (token);
      return keys;
    },
    async stop() {
      client.destroy();
      await server.stop();
    },
  };
}
