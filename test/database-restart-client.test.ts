// The client-sdk waits out what passes (the API restarting: refused connections, a WebSocket
// that reconnects) and reports at once what does not (an unknown id, a bad key).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TRPCClientError, WaitTimeoutError, createKilnClient, isTransientError, type GenerationEvent } from '../client-sdk/index.ts';
import { comparePositions, decodePosition } from '../db/events.ts';
import { createSimulator } from '../jobs/simulator/index.ts';
import { startKiln } from './support/kiln.ts';
import { freePort } from './support/ports.ts';
import { standaloneProviderEnv } from './support/simulator.ts';

const codeOf = (error: unknown) => (error instanceof TRPCClientError ? (error.data as { code?: string } | undefined)?.code : undefined);

describe('client-sdk and passing failures', () => {
  it('waitFor and watch ride out the API restarting, resuming after the last event', async () => {
    // The provider outlives the restart, as Replicate does.
    const simulator = createSimulator({ latencyMs: { min: 50, max: 100 } });
    await simulator.start();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-client-restart-'));
    const port = await freePort();
    const env = { ...standaloneProviderEnv(simulator), PORT: String(port) };
    const first = await startKiln({ env, dataDir });
    // A client of its own: the test helper closes the ones it made when its app stops.
    const client = createKilnClient({ url: first.url, apiKey: first.apiKey });
    try {
      const { id } = await client.generate({ prompt: 'outlives its API [sim:slow=3000]', platforms: ['thumbnail'] });
      const waited = client.waitFor(id, { timeoutMs: 120_000 });
      const events: GenerationEvent[] = [];
      let started!: () => void;
      const subscribed = new Promise<void>((resolve) => (started = resolve));
      const watched = (async () => {
        for await (const event of client.watch({ generationId: id }, { onStarted: () => started() })) events.push(event);
      })();
      await subscribed;
      await first.stop();

      // Down: no answer at all, which is transient.
      const refused = await client.status({ id }).then(
        () => assert.fail('expected no answer while the API is down'),
        (error: unknown) => error,
      );
      assert.equal(isTransientError(refused), true, String(refused));

      const second = await startKiln({ env, dataDir, databaseUrl: first.databaseUrl });
      try {
        const done = await waited;
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        await watched; // ends after the final event
        const positions = events.map((event) => decodePosition(event.id)!);
        assert.ok(positions.every((position, index) => index === 0 || comparePositions(positions[index - 1]!, position) <= 0), 'in order');
        const stages = events.filter((event) => event.stage !== 'queue.position').map((event) => event.stage);
        assert.equal(new Set(events.filter((event) => event.stage !== 'queue.position').map((event) => event.id)).size, stages.length, 'each event once');
        assert.equal(stages[0], 'queued');
        assert.equal(stages.at(-1), 'succeeded');
      } finally {
        await second.stop();
      }
    } finally {
      client.close();
      await simulator.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('waitFor and watch reject at once on permanent errors, and waitFor on its timeout', async () => {
    const kiln = await startKiln();
    const stranger = createKilnClient({ url: kiln.url, apiKey: 'kiln_sk_not-a-key' });
    try {
      const unknown = randomUUID();
      const notFound = await kiln.client.waitFor(unknown, { timeoutMs: 60_000 }).then(
        () => assert.fail('expected NOT_FOUND'),
        (error: unknown) => error,
      );
      assert.equal(codeOf(notFound), 'NOT_FOUND', String(notFound));
      assert.equal(isTransientError(notFound), false);

      const unauthorized = await (async () => {
        for await (const event of stranger.watch({ generationId: unknown })) void event;
      })().then(
        () => assert.fail('expected UNAUTHORIZED'),
        (error: unknown) => error,
      );
      assert.equal(codeOf(unauthorized), 'UNAUTHORIZED', String(unauthorized));

      const { id } = await kiln.client.generate({ prompt: 'takes its time [sim:slow=30000]' });
      await assert.rejects(kiln.client.waitFor(id, { timeoutMs: 500 }), WaitTimeoutError);
    } finally {
      stranger.close();
      await kiln.stop();
    }
  });
});
