// Kiln restarts with its built-in simulator: the simulator keeps its predictions in Kiln's data
// folder, so a generation whose prediction was created before the restart still completes after
// it — the prediction went on at the provider, as one at Replicate would, and is not created again.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKilnClient } from '../client-sdk/index.ts';
import { startKiln } from './support/kiln.ts';
import { freePort } from './support/ports.ts';
import { clientFor } from './support/simulator.ts';

describe('Kiln restarted on the same data folder', () => {
  it('completes a generation whose prediction its built-in simulator made before the restart', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-sim-restart-'));
    // The same address before and after, as a restarted service has: the prediction's webhook
    // then reaches the new process.
    const env = { PORT: String(await freePort()) };
    try {
      const first = await startKiln({ env, dataDir });
      const { id } = await first.client.generate({ prompt: 'outlives a restart of Kiln [sim:slow=3000]', platforms: ['thumbnail'] });
      let predictionId: string | null = null;
      for (let tries = 0; tries < 400 && predictionId === null; tries += 1) {
        predictionId = (await first.client.status({ id })).predictionId;
        if (predictionId === null) await sleep(25);
      }
      assert.ok(predictionId, 'the prediction was created before the restart');
      await first.stop();

      const second = await startKiln({ env, dataDir, databaseUrl: first.databaseUrl });
      try {
        const simulator = second.app.simulator;
        assert.ok(simulator, 'the restarted app runs its built-in simulator again');
        const client = createKilnClient({ url: second.url, apiKey: first.apiKey });
        const done = await client.waitFor(id, { timeoutMs: 90_000 });
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        assert.equal(done.predictionId, predictionId, 'the same prediction');
        assert.equal(simulator.stats().creates, 0, 'nothing was created again after the restart');
        assert.equal(done.events.filter((event) => event.stage === 'provider.created').length, 1);
        // At the provider it ran its drawn time, across the restart.
        const prediction = await clientFor(simulator).predictions.get(predictionId);
        assert.equal(prediction.status, 'succeeded');
        assert.equal(prediction.metrics?.predict_time, 3);
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
