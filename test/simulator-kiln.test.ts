// Kiln against the strict simulator: where Kiln relied on a leniency (a Cancel-After under
// Replicate's 5 s minimum), it now asks only for what Replicate accepts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Prediction } from 'replicate';
import { updateTenant } from '../db/tenants.ts';
import sharp from 'sharp';
import type { GenerateInput } from '../client-sdk/index.ts';
import { MODEL_IDS, modelDefinition } from '../jobs/provider/models.ts';
import { startKiln } from './support/kiln.ts';
import { clientFor } from './support/simulator.ts';

describe('Kiln against the strict simulator', () => {
  it('every model Kiln routes to runs on the simulator, addressed as Kiln addresses it', async () => {
    const kiln = await startKiln();
    try {
      await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'pro' }); // the tier that may use every model
      const photo = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#c08040' } }).png().toBuffer();
      const sourceId = (await kiln.client.sources.upload(photo)).id;
      // Each model with each operation it serves, with the fields Kiln sends for it.
      const routes = MODEL_IDS.flatMap((model) => modelDefinition(model).operations.map((operation) => ({ model, operation })));
      const requestFor = ({ model, operation }: (typeof routes)[number]): GenerateInput => {
        const common = { model, platforms: ['thumbnail' as const] };
        switch (operation) {
          case 'text-to-image':
            return { ...common, prompt: `routed to ${model}` };
          case 'edit':
          case 'image-to-image':
            return { ...common, operation, sourceId, prompt: `routed to ${model}` };
          case 'upscale':
            return { ...common, operation, sourceId, scale: modelDefinition(model).scales[0] ?? 2 };
          case 'remove-background':
            return { ...common, operation, sourceId };
        }
      };
      const ids = await Promise.all(routes.map(async (route) => (await kiln.client.generate(requestFor(route))).id));
      const done = await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
      assert.deepEqual(
        done.map((generation) => [generation.model, generation.operation, generation.state, generation.error?.message]),
        routes.map(({ model, operation }) => [model, operation, 'succeeded', undefined]),
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
