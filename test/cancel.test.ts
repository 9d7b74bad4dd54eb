// Cancel stops work wherever it is: in the queue, or running at the provider.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { until } from './support/until.ts';

describe('cancel', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('cancels a running generation and its prediction at the provider', async () => {
    const { id } = await kiln.client.generate({ prompt: 'slow one [sim:slow=20000]' });
    const running = await until(async () => {
      const status = await kiln.client.status({ id });
      return status.predictionId ? status : undefined;
    });
    assert.equal(running.state, 'running');
    const canceledBefore = kiln.app.simulator?.stats().predictions.canceled ?? 0;

    const result = await kiln.client.cancel({ id });
    assert.equal(result.status, 'canceled');
    const after = await kiln.client.status({ id });
    assert.equal(after.state, 'canceled');
    assert.ok(after.finishedAt);
    assert.equal(after.events.at(-1)?.stage, 'canceled');

    // The provider's prediction is canceled too, so it stops running (and billing).
    await until(async () => ((kiln.app.simulator?.stats().predictions.canceled ?? 0) > canceledBefore ? true : undefined));
    await sleep(500);
    const settled = await kiln.client.status({ id });
    assert.equal(settled.state, 'canceled', 'a late worker write does not resurrect it');
  });
});

describe('cancel while queued', () => {
  it('a canceled queued generation is never sent to the provider', async () => {
    // An API-only process queues work that no worker picks up yet.
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    try {
      const { id } = await api.client.generate({ prompt: 'never runs' });
      const canceled = await api.client.cancel({ id });
      assert.equal(canceled.status, 'canceled');

      // Now a worker comes up on the same database: it must skip the canceled job.
      const worker = await startKiln({ databaseUrl: api.databaseUrl, env: { KILN_ROLE: 'worker' } });
      try {
        const { id: later } = await api.client.generate({ prompt: 'runs after the cancel', platforms: ['thumbnail'] });
        const done = await api.client.waitFor(later, { timeoutMs: 30_000 });
        assert.equal(done.state, 'succeeded', 'the worker is live');
        const status = await api.client.status({ id });
        assert.equal(status.state, 'canceled');
        assert.equal(status.predictionId, null);
        assert.equal(worker.app.simulator?.stats().creates, 1, 'only the later generation reached the provider');
      } finally {
        await worker.stop();
      }
    } finally {
      await api.stop();
    }
  });
});
