// Assets in an S3-compatible bucket, so that API and worker processes on different machines
// share them through the bucket alone. Objects are `<prefix><key>`, written once: a key is the
// SHA-256 of its bytes, so a key that is already there already holds these bytes.
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { contentTypeOfFile } from '../render/presets.ts';
import { STORAGE_KEY_PATTERN, type AssetStorage } from './storage.ts';

export interface S3StorageSettings {
  bucket: string;
  /** Put before every key, e.g. `kiln/assets/`; empty: keys at the bucket's top. */
  prefix: string;
  /** An S3-compatible endpoint (MinIO, R2, …); undefined: AWS's own for the region. */
  endpoint: string | undefined;
  region: string;
  /** `<endpoint>/<bucket>/<key>` rather than `<bucket>.<endpoint>/<key>` (most S3-compatible servers want this). */
  forcePathStyle: boolean;
  /** Explicit keys; undefined: the SDK's usual chain (AWS_* variables, shared profile, instance or task role). */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** `when-required`: no checksums beyond those the API demands (for stores that mishandle the SDK's defaults). */
  checksums: 'when-supported' | 'when-required';
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** Tries of one request, the first included (the SDK's own retry of throttles and 5xx). */
  maxAttempts: number;
  /** Sockets to the store per process. */
  maxSockets: number;
  /** Deletes sent at once while pruning. */
  deleteConcurrency: number;
}

/** Kiln serves assets with this itself; it is stored on the objects too, for a CDN that reads the bucket directly. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

const isNotFound = (error: unknown) => error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === 'NoSuchKey' || error.name === 'NotFound');

export function createS3Storage(settings: S3StorageSettings): AssetStorage {
  const checksums = settings.checksums === 'when-required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  const client = new S3Client({
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    maxAttempts: settings.maxAttempts,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    requestHandler: {
      connectionTimeout: settings.connectTimeoutMs,
      requestTimeout: settings.requestTimeoutMs,
      httpAgent: { keepAlive: true, maxSockets: settings.maxSockets },
      httpsAgent: { keepAlive: true, maxSockets: settings.maxSockets },
    },
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
  });
  const Bucket = settings.bucket;
  const objectKey = (key: string) => {
    if (!STORAGE_KEY_PATTERN.test(key)) throw new Error(`invalid storage key: ${key}`);
    return `${settings.prefix}${key}`;
  };
  const sizeOf = async (key: string): Promise<number | undefined> => {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: objectKey(key) }));
      return head.ContentLength ?? 0;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  };

  return {
    description: `the bucket ${Bucket}${settings.prefix ? ` under ${settings.prefix}` : ''}${settings.endpoint ? ` at ${settings.endpoint}` : ''}`,
    async put(key, bytes) {
      // A HEAD is cheaper than sending the bytes again: identical variants (a cache hit's, a
      // retried render's) are common, and an object once written never changes.
      if ((await sizeOf(key)) === bytes.length) return;
      await client.send(
        new PutObjectCommand({
          Bucket,
          Key: objectKey(key),
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: contentTypeOfFile(key) ?? 'application/octet-stream',
          CacheControl: IMMUTABLE,
        }),
      );
    },
    async open(key) {
      if (!STORAGE_KEY_PATTERN.test(key)) return undefined;
      const size = await sizeOf(key);
      if (size === undefined) return undefined;
      return {
        size,
        stream() {
          // The body is fetched only when read; its failure (the object deleted since, the
          // store gone) ends the stream with that error.
          const out = new PassThrough();
          client
            .send(new GetObjectCommand({ Bucket, Key: objectKey(key) }), { abortSignal: abortOnClose(out) })
            .then((object) => {
              if (!(object.Body instanceof Readable)) throw new Error('the store answered without a body');
              return pipeline(object.Body, out);
            })
            .catch((error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))));
          return out;
        },
      };
    },
    async delete(keys) {
      // One DELETE per key (idempotent: a missing key answers 204), a few at once; the
      // multi-object delete is not offered by every S3-compatible store.
      const queue = [...keys];
      const deleteNext = async (): Promise<void> => {
        for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
          await client.send(new DeleteObjectCommand({ Bucket, Key: objectKey(key) }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(settings.deleteConcurrency, queue.length) }, deleteNext));
    },
    async check() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        const status = error instanceof S3ServiceException ? ` (HTTP ${error.$metadata.httpStatusCode ?? '?'} ${error.name})` : '';
        throw new Error(`the bucket ${Bucket} cannot be reached${status}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    },
    close() {
      client.destroy();
    },
  };
}

/** Aborts the GET when the reader goes away before the end (a client that hung up). */
function abortOnClose(stream: PassThrough): AbortSignal {
  const controller = new AbortController();
  stream.once('close', () => {
    if (!stream.readableEnded) controller.abort();
  });
  return controller.signal;
}
