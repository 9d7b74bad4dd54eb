// Predictions report back by signed webhook (POST /webhooks/replicate); a poll is only the
// backstop. Forged, stale, replayed and late webhooks change nothing.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { startKiln, type TestKiln } from './support/kiln.ts';

async function waitForPrediction(kiln: TestKiln, id: string): Promise<string> {
  for (let tries = 0; tries < 400; tries += 1) {
    const { predictionId } = await kiln.client.status({ id });
    if (predictionId) return predictionId;
    await sleep(25);
  }
  throw new Error('no prediction was created');
}

async function startedProcessing(kiln: TestKiln, id: string): Promise<void> {
  for (let tries = 0; tries < 400; tries += 1) {
    if ((await kiln.client.status({ id })).events.some((event) => event.stage === 'provider.processing')) return;
    await sleep(25);
  }
  throw new Error('the provider never reported processing');
}

function sendWebhook(kiln: TestKiln, generationId: string, body: unknown, options: { secret: string; id?: string; at?: Date }) {
  const payload = JSON.stringify(body);
  const id = options.id ?? `msg_${randomUUID()}`;
  const at = options.at ?? new Date();
  return fetch(`${kiln.url}/webhooks/replicate?tag=${generationId}&attempt=1`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(options.secret).sign(id, at, payload),
    },
    body: payload,
  });
}

describe('webhooks', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());
  const simulator = () => {
    assert.ok(kiln.app.simulator);
    return kiln.app.simulator;
  };
  /** What the provider would send about a prediction (the test speaks for the provider here). */
  const prediction = (id: string) => ({ id, status: 'starting', input: {}, output: null, error: null, logs: '', created_at: new Date().toISOString(), metrics: {} });

  it('bring a prediction\'s completion: no poll is needed', async () => {
    const before = simulator().stats();
    // Long enough at the provider that the start webhook surely lands before the completion.
    const { id } = await kiln.client.generate({ prompt: 'reported by webhook [sim:slow=1000]', platforms: ['thumbnail'] });
    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    // The simulator counts a webhook once it has Kiln's answer, which may come after the success.
    // A start webhook that outruns the create's answer gets a 503 and, as on Replicate, is not
    // sent again: counted as failed. The start webhook becoming a stage event is shown below.
    const sent = () => {
      const stats = simulator().stats();
      return stats.webhooksSent + stats.webhooksFailed - before.webhooksSent - before.webhooksFailed;
    };
    for (let tries = 0; tries < 200 && sent() < 2; tries += 1) await sleep(50);
    assert.ok(sent() >= 2, 'start and completed webhooks were sent');
    // The built-in backstop poll is a minute away: success came by webhook alone.
    assert.equal(simulator().stats().reads - before.reads, 0, 'Kiln did not poll the provider');
  });

  it('forged, unsigned and stale webhooks are refused and change nothing', async () => {
    const { id } = await kiln.client.generate({ prompt: 'slow one [sim:slow=3000]', platforms: ['thumbnail'] });
    const predictionId = await waitForPrediction(kiln, id);
    const failed = { ...prediction(predictionId), status: 'failed', error: 'forged failure' };
    await startedProcessing(kiln, id); // the real 'start' webhook first: from then on nothing is due for 3 seconds
    const eventsBefore = (await kiln.client.status({ id })).events.length;

    const forged = await sendWebhook(kiln, id, failed, { secret: `whsec_${Buffer.from('not the secret, not at all').toString('base64')}` });
    assert.equal(forged.status, 401);
    const stale = await sendWebhook(kiln, id, failed, { secret: simulator().webhookSecret, at: new Date(Date.now() - 10 * 60_000) });
    assert.equal(stale.status, 401, 'a delivery older than 5 minutes is refused');
    const unsigned = await fetch(`${kiln.url}/webhooks/replicate?tag=${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(failed) });
    assert.equal(unsigned.status, 401);
    const huge = await sendWebhook(kiln, id, { ...failed, logs: 'x'.repeat(2 * 1024 * 1024) }, { secret: simulator().webhookSecret });
    assert.equal(huge.status, 413, 'a body over 1 MiB is refused before anything reads it');

    const status = await kiln.client.status({ id });
    assert.equal(status.state, 'running');
    assert.equal(status.events.length, eventsBefore, 'no event was written');
    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'succeeded', 'the real prediction still finished the generation');
  });

  it('a replayed delivery is handled once, and a late one never moves a final state', async () => {
    const { id } = await kiln.client.generate({ prompt: 'replayed [sim:slow=1500]', platforms: ['thumbnail'] });
    const predictionId = await waitForPrediction(kiln, id);
    await startedProcessing(kiln, id); // the real 'start' webhook first, so the counts below are ours alone
    const processing = { ...prediction(predictionId), status: 'processing', logs: '  40%|████      | 2/5 [00:01<00:01]' };
    const secret = simulator().webhookSecret;
    const deliveryId = `msg_${randomUUID()}`;
    const first = await sendWebhook(kiln, id, processing, { secret, id: deliveryId });
    assert.equal(first.status, 200);
    const afterFirst = (await kiln.client.status({ id })).events.length;
    const replay = await sendWebhook(kiln, id, processing, { secret, id: deliveryId });
    assert.equal(replay.status, 200);
    assert.equal(((await replay.json()) as { duplicate?: boolean }).duplicate, true);
    assert.equal((await kiln.client.status({ id })).events.length, afterFirst, 'the replay wrote nothing');

    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'succeeded');
    // Out of order: news of an earlier state, or a different ending, after the end.
    for (const late of [processing, { ...processing, status: 'failed', error: 'too late' }]) {
      const response = await sendWebhook(kiln, id, late, { secret });
      assert.equal(response.status, 200);
    }
    const final = await kiln.client.status({ id });
    assert.equal(final.state, 'succeeded');
    assert.equal(final.events.length, done.events.length);
  });

  it('a generation past its deadline is canceled at the provider and fails with a timeout', async () => {
    const canceledBefore = simulator().stats().predictions.canceled;
    const { id } = await kiln.client.generate({ prompt: 'never finishes in time [sim:slow=60000]', platforms: ['thumbnail'], deadlineSeconds: 10 });
    await waitForPrediction(kiln, id);
    const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'deadline_exceeded');
    for (let tries = 0; tries < 100 && simulator().stats().predictions.canceled === canceledBefore; tries += 1) await sleep(50);
    assert.equal(simulator().stats().predictions.canceled - canceledBefore, 1, 'the prediction was stopped at the provider too');
  });
});

describe('a lost webhook', () => {
  it('is made up for by the backstop poll', async () => {
    const kiln = await startKiln({ env: { KILN_WEBHOOK_BACKSTOP_SECONDS: '1' } });
    try {
      const simulator = kiln.app.simulator;
      assert.ok(simulator);
      simulator.faults.set({ dropWebhooks: true });
      const { id } = await kiln.client.generate({ prompt: 'webhook lost', platforms: ['thumbnail'] });
      const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.ok(simulator.stats().webhooksDropped >= 1);
      assert.ok(simulator.stats().reads >= 1, 'a poll found the result');
    } finally {
      await kiln.stop();
    }
  });
});

describe('polls without webhooks', () => {
  it('are taken up when they come due, not at the next backstop fetch', async () => {
    // A backstop fetch far beyond the wait below: only the poll's own alarm can take it up in time.
    const kiln = await startKiln({
      env: { KILN_WEBHOOKS: 'off' },
      configure: (config) => ({ ...config, worker: { ...config.worker, pickup: { ...config.worker.pickup, backstopSeconds: { ...config.worker.pickup.backstopSeconds, poll: 120 } } } }),
    });
    try {
      for (let index = 0; index < 3; index += 1) {
        const { id } = await kiln.client.generate({ prompt: `polled ${index}`, platforms: ['thumbnail'] });
        const done = await kiln.client.waitFor(id, { timeoutMs: 30_000 });
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      }
      assert.equal(kiln.app.simulator?.stats().webhooksSent ?? 0, 0, 'no webhook brought the results');
    } finally {
      await kiln.stop();
    }
  });
});
