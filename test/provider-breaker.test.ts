// A provider that keeps failing opens the circuit breaker: calls stop, work waits (deferred,
// not failed), /ready and /metrics say so — while /health (liveness) and /ready stay 200: the
// process is fine, restarting it or taking it out of service would not bring the provider back
// — and once a probe gets through the breaker closes again.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

async function health(kiln: TestKiln): Promise<{ status: number; ready: number; breaker: string | null | undefined; metric: string | undefined }> {
  const [live, ready, metrics] = await Promise.all([fetch(`${kiln.url}/health`), fetch(`${kiln.url}/ready`), fetch(`${kiln.url}/metrics`)]);
  const body = (await ready.json()) as { provider?: { breaker: string | null } };
  await live.body?.cancel();
  const text = await metrics.text();
  const metric = /^kiln_provider_breaker_state\{state="([^"]+)"\} 1$/m.exec(text)?.[1];
  return { status: live.status, ready: ready.status, breaker: body.provider?.breaker, metric };
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
  it('opens on a burst of 5xx, defers work rather than failing it, shows in /ready and /metrics but fails no probe, and closes again', async () => {
    const kiln = await startKiln({ env: { KILN_PROVIDER_BREAKER_FAILURES: '3', KILN_PROVIDER_BREAKER_HALF_OPEN_MS: '1500' } });
    try {
      const simulator = kiln.app.simulator;
      assert.ok(simulator);
      assert.deepEqual(await health(kiln), { status: 200, ready: 200, breaker: 'closed', metric: 'closed' });

      simulator.faults.set({ http5xx: { count: 100_000, status: 503 } });
      const { id } = await kiln.client.generate({ prompt: 'provider is down', platforms: ['thumbnail'] });
      const open = await eventually(() => health(kiln), (report) => report.breaker === 'open', 30_000);
      assert.deepEqual(open, { status: 200, ready: 200, breaker: 'open', metric: 'open' });
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
      assert.deepEqual(await health(kiln), { status: 200, ready: 200, breaker: 'closed', metric: 'closed' });
      const after = await kiln.client.stats();
      assert.equal(after.provider.breaker, 'closed');
      assert.equal(after.generations.succeeded, 1);
    } finally {
      await kiln.stop();
    }
  });
});
