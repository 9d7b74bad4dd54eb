// The provider door of jobs/: the official replicate client over our one-shot fetch, inside
// the cockatiel policies, against the simulator. These pin down what is retried, how, and
// what never is.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { PermanentProviderError, ProviderUnavailableError, TransientProviderError } from '../jobs/provider/errors.ts';
import { MODELS } from '../jobs/provider/models.ts';
import { createProviderPolicies, type ProviderPolicies } from '../jobs/provider/policies.ts';
import type { ImageProvider } from '../jobs/provider/provider.ts';
import { createReplicateProvider, toPrediction } from '../jobs/provider/replicate-provider.ts';
import { createSimulator, type Simulator } from '../jobs/simulator/index.ts';

const schnell = MODELS['black-forest-labs/flux-schnell'];
const request = { route: schnell.route, input: { prompt: 'provider test', output_format: 'png' } };

describe('provider calls', () => {
  let simulator: Simulator;
  let policies: ProviderPolicies;
  let provider: ImageProvider;
  before(async () => {
    simulator = createSimulator({ apiToken: 'secret', latencyMs: { min: 20, max: 40 }, queueDelayMs: 10 });
    await simulator.start();
  });
  after(() => simulator.stop());
  beforeEach(async () => {
    await fetch(`${simulator.url}/_sim/reset`, { method: 'POST' });
    policies = createProviderPolicies({
      timeoutMs: 300,
      retry: { maxAttempts: 4, backoffBaseMs: 100, backoffMaxMs: 2000 },
      breaker: { consecutiveFailures: 5, halfOpenAfterMs: 60_000 },
      bulkhead: { maxConcurrentCalls: 8, maxQueuedCalls: 16 },
    });
    provider = createReplicateProvider({ apiToken: 'secret', baseUrl: `${simulator.url}/v1`, policies, extraOutputOrigins: [simulator.url] });
  });

  it('waits out 429s on create with real backoff, one request per attempt', async () => {
    simulator.faults.set({ throttle: { count: 2 } });
    const started = Date.now();
    const prediction = await provider.createPrediction(request);
    assert.ok(prediction.id);
    const stats = simulator.stats();
    assert.equal(stats.throttled, 2, 'the client library did not retry on its own');
    assert.equal(stats.creates, 1);
    // The 429 body says "resets in ~Ns" (N ≥ 1): each retry waited at least that long.
    assert.ok(Date.now() - started >= 2000, `waited ${Date.now() - started} ms`);
    assert.equal(policies.breakerState(), 'closed', '429s mean busy, not broken');
  });

  it('never repeats a create after a 5xx, which may have created a prediction', async () => {
    simulator.faults.set({ http5xx: { count: 1, status: 502 } });
    await assert.rejects(provider.createPrediction(request), (error) => error instanceof TransientProviderError && error.ambiguous && error.status === 502);
    assert.equal(simulator.stats().http5xx, 1, 'exactly one request was sent');
  });

  it('never repeats a create that timed out, and the simulator shows why: it was created anyway', async () => {
    simulator.faults.set({ hang: { count: 1, ms: 600 } });
    await assert.rejects(provider.createPrediction(request), (error) => error instanceof TransientProviderError && error.ambiguous);
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(simulator.stats().creates, 1, 'one prediction exists, and no second was created');
  });

  it('retries reads through 5xx and timeouts', async () => {
    const created = await provider.createPrediction(request);
    simulator.faults.set({ http5xx: { count: 2, status: 503 } });
    assert.equal((await provider.getPrediction(created.id)).id, created.id);
    assert.equal(simulator.stats().http5xx, 2);
    simulator.faults.set({ hang: { count: 1, ms: 1000 } });
    const started = Date.now();
    assert.equal((await provider.getPrediction(created.id)).id, created.id);
    assert.ok(Date.now() - started < 1000, 'the hung attempt was cut off by the timeout and retried');
  });

  it('does not retry what cannot succeed', async () => {
    await assert.rejects(
      provider.createPrediction({ route: schnell.route, input: { prompt: '' } }),
      (error) => error instanceof PermanentProviderError && error.status === 422 && /prompt/.test(error.publicReason),
    );
    assert.equal(simulator.stats().creates, 0);
  });

  it('opens the breaker on a burst of failures and then fails fast without calling', async () => {
    simulator.faults.set({ http5xx: { count: 1000, status: 500 } });
    await assert.rejects(provider.getPrediction('nope'), TransientProviderError); // 4 attempts
    await assert.rejects(provider.getPrediction('nope')); // the breaker opens during this call
    assert.equal(policies.breakerState(), 'open');
    const sent = simulator.stats().http5xx;
    await assert.rejects(provider.getPrediction('nope'), ProviderUnavailableError);
    assert.equal(simulator.stats().http5xx, sent, 'an open breaker sends nothing');
  });

  it('reads how long a prediction took on the provider\'s clock, however late it is read', async () => {
    const created = await provider.createPrediction(request);
    assert.equal(created.totalSeconds, null, 'not ended yet');
    await new Promise((resolve) => setTimeout(resolve, 400)); // queue 10 ms and run 20–40 ms, then read well after
    const ended = await provider.getPrediction(created.id);
    assert.equal(ended.status, 'succeeded');
    assert.ok(ended.totalSeconds !== null && ended.totalSeconds >= 0.029 && ended.totalSeconds < 0.2, `took ${ended.totalSeconds} s`);
    assert.ok(ended.predictSeconds !== null && ended.predictSeconds <= ended.totalSeconds, 'its run is part of it');
  });
});

describe('a prediction\'s timing as Replicate reports it', () => {
  // Replicate's own example: timestamps to the microsecond, and metrics.
  const example = {
    id: 'gm3qorzdhgbfurvjtvhg6dckhu',
    status: 'succeeded',
    output: 'hello Alice',
    created_at: '2023-09-08T16:19:34.765994Z',
    started_at: '2023-09-08T16:19:34.779176Z',
    completed_at: '2023-09-08T16:19:34.791859Z',
    metrics: { predict_time: 0.012683, total_time: 0.025366 },
  };

  it('is completed_at − created_at, to the millisecond', () => {
    assert.equal(toPrediction(example).totalSeconds, 0.026);
    assert.equal(toPrediction(example).predictSeconds, 0.012683);
  });

  it('falls back to metrics.total_time, and is null where neither says', () => {
    assert.equal(toPrediction({ ...example, completed_at: null }).totalSeconds, 0.025366);
    assert.equal(toPrediction({ ...example, created_at: 'yesterday' }).totalSeconds, 0.025366);
    assert.equal(toPrediction({ ...example, status: 'processing', completed_at: null, metrics: {} }).totalSeconds, null);
    assert.equal(toPrediction({ ...example, completed_at: '2023-09-08T16:19:33Z', metrics: undefined }).totalSeconds, null, 'an end before the start is no duration');
  });
});
