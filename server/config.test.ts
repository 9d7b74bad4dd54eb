// The configuration: defaults that start on a fresh machine, and clear refusals of bad settings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

describe('configuration', () => {
  it('starts with nothing set: the built-in simulator, and the derived create bound beside its parts', () => {
    const config = loadConfig({});
    assert.equal(config.provider.useSimulator, true);
    assert.equal(config.provider.createSettleMs, config.provider.timeoutMs * 2 + 5_000);
    assert.equal(loadConfig({ KILN_PROVIDER_TIMEOUT_MS: '1000' }).provider.createSettleMs, 7_000);
  });

  it('refuses another endpoint without a token, naming the variable to set', () => {
    assert.throws(() => loadConfig({ REPLICATE_BASE_URL: 'http://127.0.0.1:8788/v1' }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /REPLICATE_API_TOKEN: REPLICATE_API_TOKEN is required with REPLICATE_BASE_URL/);
      return true;
    });
    assert.equal(loadConfig({ REPLICATE_BASE_URL: 'http://127.0.0.1:8788/v1', REPLICATE_API_TOKEN: 'r8_x' }).provider.useSimulator, false);
  });

  it('names each invalid variable and why', () => {
    assert.throws(() => loadConfig({ KILN_RETRY_LIMIT: '-1', KILN_WEBHOOKS: 'sometimes' }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /KILN_RETRY_LIMIT/);
      assert.match(error.message, /KILN_WEBHOOKS: KILN_WEBHOOKS must be auto or off/);
      return true;
    });
  });

  it('refuses a headers timeout past the request timeout, and an admin token too short to be secret', () => {
    assert.throws(() => loadConfig({ KILN_HTTP_HEADERS_TIMEOUT_MS: '40000', KILN_HTTP_REQUEST_TIMEOUT_MS: '30000' }), /KILN_HTTP_HEADERS_TIMEOUT_MS must not exceed/);
    assert.throws(() => loadConfig({ KILN_ADMIN_TOKEN: 'short' }), /KILN_ADMIN_TOKEN must be at least 32 characters/);
    assert.equal(loadConfig({}).api.adminToken, undefined, 'admin procedures are off by default');
    assert.equal(loadConfig({ KILN_WS_MAX_SUBSCRIPTIONS: '10' }).realtime.maxMessagesPerFrame, 20);
  });

  it('keeps assets in the data folder unless told to use a bucket, and a bucket needs its name', () => {
    const local = loadConfig({ KILN_DATA_DIR: '/srv/kiln' }).storage;
    assert.deepEqual(local, { kind: 'local', root: '/srv/kiln/assets' });
    assert.throws(() => loadConfig({ KILN_STORAGE: 's3' }), /KILN_S3_BUCKET: KILN_S3_BUCKET is required with KILN_STORAGE=s3/);
    assert.throws(() => loadConfig({ KILN_STORAGE: 's3', KILN_S3_BUCKET: 'b', KILN_S3_ACCESS_KEY_ID: 'AKIA' }), /go together/);
    assert.throws(() => loadConfig({ KILN_STORAGE: 'ftp' }), /KILN_STORAGE must be local or s3/);
  });

  it('takes the bucket\'s region from AWS_REGION too, and path-style URLs by default only for another endpoint', () => {
    const aws = loadConfig({ KILN_STORAGE: 's3', KILN_S3_BUCKET: 'b', AWS_REGION: 'eu-west-1' }).storage;
    assert.ok(aws.kind === 's3');
    assert.equal(aws.region, 'eu-west-1');
    assert.equal(aws.forcePathStyle, false);
    assert.equal(aws.credentials, undefined, 'the SDK\'s own credential chain');
    const other = loadConfig({ KILN_STORAGE: 's3', KILN_S3_BUCKET: 'b', KILN_S3_ENDPOINT: 'http://127.0.0.1:9000' }).storage;
    assert.ok(other.kind === 's3');
    assert.equal(other.forcePathStyle, true);
    assert.equal(other.region, 'us-east-1');
    const virtual = loadConfig({ KILN_STORAGE: 's3', KILN_S3_BUCKET: 'b', KILN_S3_ENDPOINT: 'https://s3.example.net', KILN_S3_FORCE_PATH_STYLE: 'false' }).storage;
    assert.ok(virtual.kind === 's3' && !virtual.forcePathStyle);
  });
});
