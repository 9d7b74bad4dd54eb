import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

describe('batch', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('a batch of 50 prompts all succeed, with counts per state along the way', async () => {
    const items = Array.from({ length: 50 }, (_, index) => ({ prompt: `batch item ${index}`, platforms: ['thumbnail' as const] }));
    const { batchId, ids } = await kiln.client.batch({ items });
    assert.equal(ids.length, 50);
    assert.equal(new Set(ids).size, 50);

    let status = await kiln.client.batchStatus({ batchId });
    assert.equal(status.total, 50);
    const deadline = Date.now() + 120_000;
    while (!status.done && Date.now() < deadline) {
      await sleep(200);
      status = await kiln.client.batchStatus({ batchId });
    }
    assert.deepEqual(status.counts, { queued: 0, running: 0, succeeded: 50, failed: 0, canceled: 0 });
    // ids come back in item order
    const third = await kiln.client.status({ id: ids[2]! });
    assert.equal(third.prompt, 'batch item 2');
    assert.equal(third.batchId, batchId);
    const listed = await kiln.client.list({ batchId, limit: 100 });
    assert.equal(listed.items.length, 50);
  });
});

describe('a batch of 1,000', () => {
  it('is accepted in one transaction', async () => {
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    try {
      const items = Array.from({ length: 1000 }, (_, index) => ({ prompt: `bulk ${index}` }));
      const { batchId, ids } = await api.client.batch({ items });
      assert.equal(ids.length, 1000);
      const status = await api.client.batchStatus({ batchId });
      assert.equal(status.total, 1000);
      assert.equal(status.counts.queued, 1000);
    } finally {
      await api.stop();
    }
  });
});
