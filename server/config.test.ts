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
});
