// Waiting in Kiln's queue is not a failure: only the caller's deadline (when asked for) counts
// the wait; a prediction's own run limit starts when it is created.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';

describe('a backlog', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({
      env: {
        // One create a second, no burst: the last of 15 waits about 14 s in the queue, nearly
        // three times the run limit of each prediction.
        KILN_PROVIDER_CREATES_PER_MINUTE: '60',
        KILN_PROVIDER_CREATE_BURST: '1',
        KILN_PREDICTION_TIMEOUT_SECONDS: '5',
      },
    });
  });
  after(() => kiln.stop());

  it('longer than a prediction may run drains with every generation succeeding', async () => {
    const { ids } = await kiln.client.batch({ items: Array.from({ length: 15 }, (_, index) => ({ prompt: `backlog ${index}`, platforms: ['thumbnail'] as const })) });
    const done = await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 120_000 })));
    assert.deepEqual(
      done.map((generation) => generation.state),
      ids.map(() => 'succeeded'),
      JSON.stringify(done.filter((generation) => generation.error).map((generation) => generation.error)),
    );
    // From queued to its prediction's creation: the time the create budget kept it waiting.
    const createdAt = (generation: (typeof done)[number]) => new Date(generation.events.find((event) => event.stage === 'provider.created')!.at).getTime();
    const waitedMs = Math.max(...done.map((generation) => createdAt(generation) - new Date(generation.createdAt).getTime()));
    assert.ok(waitedMs > 5_000, `the longest wait before a create, ${waitedMs} ms, is longer than a prediction's run limit`);
    assert.ok(done.every((generation) => generation.deadlineAt === null), 'no deadline was asked for');
  });

  it('fails work whose caller\'s deadline passes while it waits, at the deadline and without taking a create slot', async () => {
    // 20 ahead at one create a second: its turn would come after about 20 s, its deadline after 10.
    const { ids } = await kiln.client.batch({ items: Array.from({ length: 20 }, (_, index) => ({ prompt: `ahead ${index}`, platforms: ['thumbnail'] as const })) });
    const { id } = await kiln.client.generate({ prompt: 'in a hurry', platforms: ['thumbnail'], deadlineSeconds: 10 });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'failed');
    assert.deepEqual(done.error, { code: 'deadline_exceeded', message: 'not started before its deadline' });
    assert.deepEqual(done.events.map((event) => event.stage), ['queued', 'failed'], 'it never started');
    const lateByMs = new Date(done.finishedAt!).getTime() - new Date(done.deadlineAt!).getTime();
    assert.ok(lateByMs >= 0 && lateByMs < 3_000, `failed ${lateByMs} ms after its deadline, not at its turn`);
    const row = await kiln.app.database.db.selectFrom('generations').select(['dispatched_at', 'prediction_id']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.deepEqual(row, { dispatched_at: null, prediction_id: null }, 'never handed a create slot');
    // The work ahead of it goes on at the budget's pace, none of it failed.
    const first = await kiln.client.waitFor(ids[0]!, { timeoutMs: 60_000 });
    assert.equal(first.state, 'succeeded');
  });

  it('still fails a generation whose prediction runs past its limit, canceled at the provider', async () => {
    const simulator = kiln.app.simulator;
    assert.ok(simulator);
    const canceledBefore = simulator.stats().predictions.canceled;
    const { id } = await kiln.client.generate({ prompt: 'runs too long [sim:slow=30000]', platforms: ['thumbnail'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'failed');
    assert.deepEqual(done.error, { code: 'prediction_timeout', message: 'the prediction ran past its time limit and was canceled' });
    for (let tries = 0; tries < 100 && simulator.stats().predictions.canceled === canceledBefore; tries += 1) await sleep(50);
    assert.equal(simulator.stats().predictions.canceled - canceledBefore, 1, 'the provider stopped it (Cancel-After)');
  });
});
