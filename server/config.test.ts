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
});
