// How Kiln meets a failing provider: permanent failures end the generation with the
// provider's reason; transient ones (429, 5xx) are retried with backoff until they pass.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

describe('provider failures', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());
  const simulator = () => {
    assert.ok(kiln.app.simulator, 'the built-in simulator runs');
    return kiln.app.simulator;
  };

  it('a prediction the model fails ends the generation failed, with the provider\'s reason', async () => {
    const { id } = await kiln.client.generate({ prompt: 'a cat [sim:fail]' });
    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'provider_failed');
    assert.ok(done.error?.message.length, 'the reason is kept');
    assert.equal(done.assets.length, 0);
    assert.ok(done.events.some((event) => event.stage === 'failed'));
  });

  it('content the provider rejects fails with its message', async () => {
    const { id } = await kiln.client.generate({ prompt: 'something [sim:nsfw]' });
    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'failed');
    assert.match(done.error?.message ?? '', /NSFW/);
  });

  it('429s from the provider are waited out and the generation succeeds', async () => {
    simulator().faults.set({ throttle: { count: 3 } });
    const throttledBefore = simulator().stats().throttled;
    const { id } = await kiln.client.generate({ prompt: 'throttled but fine', platforms: ['thumbnail'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.ok(simulator().stats().throttled - throttledBefore >= 3, 'the provider really answered 429');
  });

  it('5xx from the provider are retried and the generation succeeds', async () => {
    simulator().faults.set({ http5xx: { count: 3, status: 503 } });
    const errorsBefore = simulator().stats().http5xx;
    const { id } = await kiln.client.generate({ prompt: 'flaky provider', platforms: ['thumbnail'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(simulator().stats().http5xx - errorsBefore, 3);
  });
});

describe('a provider that keeps failing', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_RETRY_LIMIT: '1' } });
  });
  after(() => kiln.stop());

  it('ends the generation failed once retries are exhausted, saying why', async () => {
    kiln.app.simulator?.faults.set({ http5xx: { count: 1_000_000, status: 500 } });
    const { id } = await kiln.client.generate({ prompt: 'never works', platforms: ['thumbnail'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'provider_unavailable');
    assert.ok(done.events.some((event) => event.stage === 'retrying'), 'the retry is visible in the events');
    kiln.app.simulator?.faults.clear();
  });
});

describe('a create that hangs', () => {
  it('times out, and the next attempt finds the prediction it made instead of creating another', async () => {
    // The provider takes the create but answers only after our timeout: a prediction exists
    // that Kiln never heard of.
    const kiln = await startKiln({ env: { KILN_PROVIDER_TIMEOUT_MS: '1000' } });
    try {
      const simulator = kiln.app.simulator;
      assert.ok(simulator);
      simulator.faults.set({ hang: { count: 1, ms: 3000 } });
      const { id } = await kiln.client.generate({ prompt: 'hung create', platforms: ['thumbnail'] });
      const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(simulator.stats().createsByWebhookTag[id], 1, 'one prediction, created once');
      const created = done.events.filter((event) => event.stage === 'provider.created');
      assert.equal(created.length, 1);
      assert.equal(created[0]?.data.recovered, true, 'it was found among the recent predictions');
      assert.ok(done.events.some((event) => event.stage === 'retrying'), 'the timeout was retried');
    } finally {
      await kiln.stop();
    }
  });
});
