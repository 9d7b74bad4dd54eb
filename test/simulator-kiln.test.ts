// Kiln against the strict simulator: where Kiln relied on a leniency (a Cancel-After under
// Replicate's 5 s minimum), it now asks only for what Replicate accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Prediction } from 'replicate';
import { updateTenant } from '../db/tenants.ts';
import { MODEL_IDS } from '../jobs/provider/models.ts';
import { startKiln } from './support/kiln.ts';
import { clientFor } from './support/simulator.ts';

describe('Kiln against the strict simulator', () => {
  it('every model Kiln routes to runs on the simulator, addressed as Kiln addresses it', async () => {
    const kiln = await startKiln();
    try {
      await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'pro' }); // the tier that may use every model
      const ids = await Promise.all(MODEL_IDS.map(async (model) => (await kiln.client.generate({ prompt: `routed to ${model}`, model, platforms: ['thumbnail'] })).id));
      const done = await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
      assert.deepEqual(
        done.map((generation) => [generation.model, generation.state]),
        MODEL_IDS.map((model) => [model, 'succeeded']),
      );
    } finally {
      await kiln.stop();
    }
  });

  it('a generation with under 5 s left still gets its prediction, with Replicate\'s minimum Cancel-After (5 s)', async () => {
    // An API-only app takes the request; no worker picks it up until a second app starts.
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    try {
      const { id } = await api.client.generate({ prompt: 'little time left', platforms: ['thumbnail'], deadlineSeconds: 60 });
      // Bring its deadline near, as if it had waited in the queue: 4 s left when a worker starts.
      await api.app.database.db.updateTable('generations').set({ deadline_at: new Date(Date.now() + 4000) }).where('id', '=', id).execute();

      const worker = await startKiln({ databaseUrl: api.databaseUrl });
      try {
        const done = await api.client.waitFor(id, { timeoutMs: 60_000 });
        // It either made it or ran out of time; what it must not be is refused by the provider.
        assert.notEqual(done.error?.code, 'provider_rejected', JSON.stringify(done.error));
        assert.ok(done.predictionId, 'the prediction was created');
        const simulator = worker.app.simulator;
        assert.ok(simulator);
        const prediction = (await clientFor(simulator).predictions.get(done.predictionId)) as Prediction & { deadline?: string };
        assert.equal(Date.parse(prediction.deadline ?? '') - Date.parse(prediction.created_at), 5000, 'Cancel-After: 5s');
      } finally {
        await worker.stop();
      }
    } finally {
      await api.stop();
    }
  });
});
