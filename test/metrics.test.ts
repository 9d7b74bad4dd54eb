// /health, /ready and /metrics through their public doors: real generate calls through the typed
// client, then what a scrape shows — requests by procedure and code, jobs by phase, the provider,
// rendering, realtime, credits and the cache, the queue's depth read from the database — and the
// worker-only process's own port.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { grantCredits } from '../db/credits.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { samplesOf, scrape, valueOf } from './support/prometheus-text.ts';
import { until } from './support/until.ts';
import { startKilnProcess } from './support/worker-process.ts';

const PROMTOOL = '/usr/bin/promtool';

describe('/metrics after real work', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('counts requests, jobs, provider calls, images, events, credits and cache hits, with bounded labels', async () => {
    await grantCredits(kiln.app.database.db, kiln.tenantId, 1_000_000, 'metrics test');
    const request = { prompt: 'a kiln at night', platforms: ['thumbnail' as const], formats: ['webp' as const, 'png' as const], seed: 7 };
    const first = await kiln.client.generate(request);
    const events: string[] = [];
    for await (const event of kiln.client.watch({ generationId: first.id })) {
      events.push(event.stage);
      if (event.state === 'succeeded' || event.state === 'failed') break;
    }
    assert.equal(events.at(-1), 'succeeded');
    const second = await kiln.client.generate(request); // identical and seeded: served from the first
    assert.equal((await kiln.client.waitFor(second.id, { timeoutMs: 60_000 })).state, 'succeeded');
    await assert.rejects(kiln.client.status({ id: '00000000-0000-4000-8000-000000000000' }));

    const samples = await until(async () => {
      const now = await scrape(kiln.url);
      return (valueOf(now, 'kiln_generations_succeeded_total') ?? 0) >= 2 ? now : undefined;
    });
    const at = (name: string, labels: Record<string, string> = {}) => valueOf(samples, name, labels) ?? 0;

    assert.equal(at('kiln_trpc_requests_total', { procedure: 'generate', type: 'mutation', transport: 'http', code: 'OK' }), 2);
    assert.equal(at('kiln_trpc_requests_total', { procedure: 'status', code: 'NOT_FOUND' }), 1);
    assert.ok(at('kiln_trpc_requests_total', { procedure: 'onUpdate', type: 'subscription', transport: 'ws' }) >= 1);
    assert.ok(at('kiln_trpc_request_duration_seconds_count', { procedure: 'generate' }) >= 2);
    assert.ok(at('kiln_http_requests_total', { route: 'trpc', code: '200' }) >= 1);
    assert.ok(at('kiln_http_request_duration_seconds_bucket', { route: 'trpc', le: '+Inf' }) >= 1);

    assert.equal(at('kiln_generations_queued_total', { served_from: 'own' }), 1);
    assert.equal(at('kiln_generations_queued_total', { served_from: 'cache' }), 1, 'the cache hit');
    assert.equal(at('kiln_generations_succeeded_total', { served_from: 'cache' }), 1);
    // flux-schnell: $0.003 an image, and a tenth of that for the copy.
    assert.ok(Math.abs(at('kiln_credits_charged_usd_total') - 0.0033) < 1e-9, `charged ${at('kiln_credits_charged_usd_total')}`);

    for (const phase of ['create', 'finish', 'copy']) {
      assert.ok(at('kiln_jobs_total', { phase, outcome: 'completed' }) >= 1, `${phase} jobs`);
      assert.ok(at('kiln_job_duration_seconds_count', { phase }) >= 1);
      assert.ok(at('kiln_job_wait_seconds_count', { phase }) >= 1);
    }
    // Buckets reach minutes: image work is not done in 10 s.
    assert.ok(samplesOf(samples, 'kiln_job_duration_seconds_bucket', { phase: 'create', le: '600' }).length === 1);
    assert.equal(at('kiln_generation_queue_wait_seconds_count'), 1, 'the copy never waited for a create slot');
    assert.equal(at('kiln_generation_duration_seconds_count'), 2);

    assert.equal(at('kiln_provider_calls_total', { kind: 'create', outcome: 'ok' }), 1);
    assert.ok(at('kiln_provider_call_duration_seconds_count', { kind: 'create' }) >= 1);
    assert.equal(at('kiln_provider_breaker_state', { state: 'closed' }), 1);
    assert.equal(at('kiln_provider_breaker_state', { state: 'open' }), 0);
    assert.ok(at('kiln_provider_budget_granted_total', { budget: 'replicate:create' }) >= 1);
    assert.equal(at('kiln_provider_budget_limit_per_second', { budget: 'replicate:create' }), 10);
    assert.ok(samplesOf(samples, 'kiln_predictions_in_flight').length === 1);

    // Two generations × (thumbnail in webp and png) + two originals.
    assert.equal(at('kiln_assets_stored_total', { kind: 'variant' }), 4);
    assert.equal(at('kiln_assets_stored_total', { kind: 'original' }), 2);
    assert.ok(at('kiln_assets_stored_bytes_total', { kind: 'variant', format: 'webp' }) > 0);

    assert.ok(at('kiln_realtime_events_sent_total') >= events.length);
    assert.ok(samplesOf(samples, 'kiln_websocket_connections').length === 1);
    assert.ok(samplesOf(samples, 'kiln_queue_jobs', { queue: 'kiln-generation', state: 'queued' }).length === 1);
    assert.ok(samplesOf(samples, 'kiln_nodejs_eventloop_lag_p99_seconds').length === 1, 'process and event-loop series');
    assert.ok(samplesOf(samples, 'kiln_process_cpu_seconds_total').length === 1);

    assert.deepEqual(samples.filter((sample) => 'tenant' in sample.labels), [], 'no tenant label unless turned on');
    assert.ok(samples.every((sample) => sample.name.startsWith('kiln_')), 'one prefix');
  });

  it('passes promtool check metrics', { skip: existsSync(PROMTOOL) ? false : `${PROMTOOL} is not installed (apt-get install prometheus)` }, async () => {
    const text = await (await fetch(`${kiln.url}/metrics`)).text();
    const child = execFile(PROMTOOL, ['check', 'metrics']);
    child.stdin?.end(text);
    const [code, output] = await new Promise<[number | null, string]>((resolve) => {
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.once('close', (exitCode) => resolve([exitCode, out]));
    });
    // prom-client's own process series name three gauges *_total (nodejs_active_handles_total …):
    // its names, kept as dashboards for Node know them. Everything else must pass.
    const problems = output.split('\n').filter((line) => line.trim() !== '' && !/^kiln_nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(line));
    assert.deepEqual(problems, [], output);
    assert.ok(code === 0 || problems.length === 0);
  });

  it('answers /health as liveness and /ready with its checks and the breaker, as JSON nobody caches', async () => {
    const live = await fetch(`${kiln.url}/health`);
    assert.equal(live.status, 200);
    assert.equal(live.headers.get('cache-control'), 'no-store');
    const liveBody = (await live.json()) as { status: string; role: string };
    assert.equal(liveBody.status, 'ok');
    assert.equal(liveBody.role, 'all');
    const ready = await fetch(`${kiln.url}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: 'ok',
      checks: { database: { ok: true }, migrations: { ok: true }, queue: { ok: true } },
      provider: { breaker: 'closed' },
    });
  });
});

describe('queue depth', () => {
  it('shows generations waiting for a create slot, and how long the oldest has waited, read at scrape time', async () => {
    const api = await startKiln({ env: { KILN_ROLE: 'api' } }); // no worker: they stay queued
    try {
      await api.client.batch({ items: [{ prompt: 'one' }, { prompt: 'two' }, { prompt: 'three' }] });
      const samples = await scrape(api.url);
      assert.equal(valueOf(samples, 'kiln_queue_jobs', { queue: 'kiln-dispatch', state: 'queued' }), 3);
      assert.ok((valueOf(samples, 'kiln_queue_oldest_age_seconds', { queue: 'kiln-dispatch', state: 'queued' }) ?? -1) >= 0);
      assert.equal(valueOf(samples, 'kiln_queue_jobs', { queue: 'kiln-generation', state: 'active' }), 0);
      assert.equal(valueOf(samples, 'kiln_predictions_in_flight'), 0);
      assert.deepEqual(samplesOf(samples, 'kiln_provider_breaker_state'), [], 'an API process has no breaker');
      const ready = (await (await fetch(`${api.url}/ready`)).json()) as { provider: { breaker: string | null } };
      assert.equal(ready.provider.breaker, null);
    } finally {
      await api.stop();
    }
  });

  it('labels tenants only when the operator turns it on', async () => {
    const api = await startKiln({ env: { KILN_ROLE: 'api', KILN_METRICS_TENANT_LABELS: 'on' } });
    try {
      await api.client.generate({ prompt: 'labelled' });
      const samples = await scrape(api.url);
      assert.equal(valueOf(samples, 'kiln_generations_queued_total', { tenant: api.tenantId, served_from: 'own' }), 1);
    } finally {
      await api.stop();
    }
  });
});

describe('a worker-only process', () => {
  it('serves /health, /ready and /metrics on a port of its own, and nothing else there', async () => {
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    const worker = await startKilnProcess({ role: 'worker', env: { DATABASE_URL: api.databaseUrl, KILN_SIMULATOR_LATENCY_MS: '50-100' } });
    try {
      await worker.ready;
      const ops = worker.opsUrl();
      assert.ok(ops, 'the worker prints where it serves them');
      const { id } = await api.client.generate({ prompt: 'made by the worker', platforms: ['thumbnail'] });
      assert.equal((await api.client.waitFor(id, { timeoutMs: 60_000 })).state, 'succeeded');

      assert.equal((await fetch(`${ops}/health`)).status, 200);
      const ready = (await (await fetch(`${ops}/ready`)).json()) as { status: string; provider: { breaker: string } };
      assert.deepEqual([ready.status, ready.provider.breaker], ['ok', 'closed']);
      const samples = await until(async () => {
        const now = await scrape(ops);
        return (valueOf(now, 'kiln_jobs_total', { phase: 'finish', outcome: 'completed' }) ?? 0) >= 1 ? now : undefined;
      });
      assert.equal(valueOf(samples, 'kiln_provider_calls_total', { kind: 'create', outcome: 'ok' }), 1);
      assert.equal(valueOf(samples, 'kiln_trpc_requests_total'), undefined, 'no API here');
      assert.equal((await fetch(`${ops}/trpc/models`)).status, 404);
    } finally {
      await worker.stop();
      await api.stop();
    }
  });
});
