// Kiln restarts mid-generation: the prediction already created is resumed, never created again.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createKilnClient } from '../client-sdk/index.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { standaloneProviderEnv } from './support/simulator.ts';

describe('restart', () => {
  it('a generation in flight when the app stops completes after it starts again', async () => {
    // The provider outlives Kiln's restart, as Replicate does: a standalone simulator.
    const simulator = createSimulator({ latencyMs: { min: 50, max: 100 } });
    await simulator.start();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-restart-'));
    const env = standaloneProviderEnv(simulator);
    try {
      const first = await startKiln({ env, dataDir });
      const { id } = await first.client.generate({ prompt: 'survives a restart [sim:slow=4000]', platforms: ['thumbnail'] });
      for (let tries = 0; tries < 200; tries += 1) {
        if ((await first.client.status({ id })).predictionId) break;
        await sleep(25);
      }
      assert.ok((await first.client.status({ id })).predictionId, 'the prediction was created before the restart');
      await first.stop();

      const second = await startKiln({ env, dataDir, databaseUrl: first.databaseUrl });
      try {
        const client = createKilnClient({ url: second.url, apiKey: first.apiKey });
        const done = await client.waitFor(id, { timeoutMs: 60_000 });
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        assert.equal(simulator.stats().creates, 1, 'the prediction was resumed, not created a second time');
        // No worker slot was held while the provider worked: the waiting (a queued poll) simply
        // carried on in the restarted app.
        assert.equal(done.events.filter((event) => event.stage === 'provider.created').length, 1);
      } finally {
        await second.stop();
      }
    } finally {
      await simulator.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
