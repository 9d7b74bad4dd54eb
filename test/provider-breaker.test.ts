// A provider that keeps failing opens the circuit breaker: calls stop, work waits (deferred,
// not failed), /health says so, and once a probe gets through the breaker closes again.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

async function health(kiln: TestKiln): Promise<{ status: number; provider: string | undefined }> {
  const response = await fetch(`${kiln.url}/health`);
  const body = (await response.json()) as { checks: Record<string, { detail?: string }> };
  return { status: response.status, provider: body.checks.provider?.detail };
}

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(50);
  }
}

describe('circuit breaker', () => {
  it('opens on a burst of 5xx, defers work rather than failing it, shows in /health, and closes again', async () => {
    const kiln = await startKiln({ env: { KILN_PROVIDER_BREAKER_FAILURES: '3', KILN_PROVIDER_BREAKER_HALF_OPEN_MS: '1500' } });
    try {
      const simulator = kiln.app.simulator;
      assert.ok(simulator);
      assert.deepEqual(await health(kiln), { status: 200, provider: 'circuit closed' });

      simulator.faults.set({ http5xx: { count: 100_000, status: 503 } });
      const { id } = await kiln.client.generate({ prompt: 'provider is down', platforms: ['thumbnail'] });
      const open = await eventually(() => health(kiln), (report) => report.provider === 'circuit open', 30_000);
      assert.deepEqual(open, { status: 503, provider: 'circuit open' });
      const stats = await kiln.client.stats();
      assert.equal(stats.provider.breaker, 'open', 'the stats show the breaker too');
      assert.deepEqual(stats.provider.budgets.map((budget) => budget.name).sort(), ['replicate:create', 'replicate:read']);
      const waiting = await eventually(
        () => kiln.client.status({ id }),
        (status) => status.events.some((event) => event.stage === 'deferred'),
        30_000,
      );
      // Back in the queue until the breaker lets calls through again (by now it may be trying again).
      assert.ok(['queued', 'running'].includes(waiting.state), `the generation did not fail (${waiting.state})`);
      const deferral = waiting.events.find((event) => event.stage === 'deferred');
      assert.match(String(deferral?.data.reason), /failing repeatedly; calls are paused/);

      simulator.faults.set({ http5xx: null });
      const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.deepEqual(await health(kiln), { status: 200, provider: 'circuit closed' });
      const after = await kiln.client.stats();
      assert.equal(after.provider.breaker, 'closed');
      assert.equal(after.generations.succeeded, 1);
    } finally {
      await kiln.stop();
    }
  });
});
