// Structured logs, read as an operator reads them: one JSON line per call and per job run,
// carrying the request id (the client's x-request-id, or Kiln's) and the ids that tie a call to
// its generation, its jobs and its provider prediction — and never a credential.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKilnClient } from '../client-sdk/index.ts';
import { createLogger } from '../server/logger.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

type Line = Record<string, unknown> & { msg: string; level: string };

describe('logs', () => {
  let kiln: TestKiln;
  const lines: Line[] = [];
  const raw: string[] = [];
  before(async () => {
    kiln = await startKiln({
      logger: createLogger({
        level: 'debug',
        write: (line) => {
          raw.push(line);
          lines.push(JSON.parse(line) as Line);
        },
      }),
    });
  });
  after(() => kiln.stop());

  /** Waits until lines matching `match` are there, and answers them. */
  async function linesWhere(match: (line: Line) => boolean, count = 1, timeoutMs = 30_000): Promise<Line[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.filter(match);
      if (found.length >= count || Date.now() > until) return found;
      await sleep(50);
    }
  }

  it('ties a generate call to its jobs and its prediction by request id, generation id and prediction id', async () => {
    // The typed client, through a fetch that names the request as a gateway would.
    const seen: { requestId: string | null }[] = [];
    const client = createKilnClient({
      url: kiln.url,
      apiKey: kiln.apiKey,
      fetch: async (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('x-request-id', 'edge-7f3a');
        const response = await fetch(input, { ...init, headers });
        seen.push({ requestId: response.headers.get('x-request-id') });
        return response;
      },
    });
    try {
      const { id } = await client.generate({ prompt: 'a lighthouse at dusk', platforms: ['instagram-post'], formats: ['webp'] });
      assert.deepEqual(seen, [{ requestId: 'edge-7f3a' }], 'the id is answered in the response header');
      const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
      assert.equal(done.state, 'succeeded');

      const [call] = await linesWhere((line) => line.msg === 'call' && line.procedure === 'generate' && line.generationId === id);
      assert.ok(call, 'one line for the call');
      assert.equal(call.requestId, 'edge-7f3a');
      assert.equal(call.code, 'OK');
      assert.equal(call.level, 'info');
      assert.equal(call.tenantId, kiln.tenantId);
      assert.equal(typeof call.durationMs, 'number');

      // Each job run: one line, with its phase, outcome and duration, and the same ids.
      const runs = await linesWhere((line) => line.msg === 'job finished' && line.generationId === id && line.phase === 'finish');
      assert.equal(runs.length, 1);
      const jobs = lines.filter((line) => line.msg === 'job finished' && line.generationId === id);
      const phases = jobs.map((line) => `${String(line.phase)}:${String(line.outcome)}`);
      assert.equal(phases[0], 'create:created', phases.join(' '));
      assert.equal(phases.at(-1), 'finish:succeeded', phases.join(' '));
      for (const job of jobs) {
        assert.equal(job.requestId, 'edge-7f3a', `${String(job.phase)} carries the request id`);
        assert.equal(job.predictionId, done.predictionId, `${String(job.phase)} carries the prediction id`);
        assert.equal(typeof job.durationMs, 'number');
        assert.equal(typeof job.jobId, 'string');
      }
      // Kept with the generation for its jobs; with no SDK there is no trace to link to.
      const row = await kiln.app.database.db.selectFrom('generations').select(['request_id', 'traceparent']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(row, { request_id: 'edge-7f3a', traceparent: null });
      assert.equal(call.traceId, undefined, 'no trace id on the line without an SDK');
      // The provider's news came by webhook: its request line names the generation and the prediction.
      const [webhook] = await linesWhere((line) => line.msg === 'request' && line.path === '/webhooks/replicate' && line.outcome === 'done' && line.generationId === id);
      assert.equal(webhook?.predictionId, done.predictionId);
    } finally {
      client.close();
    }
  });

  it('ties a batch call and its generations to the batch id', async () => {
    const { batchId, ids } = await kiln.client.batch({ items: [{ prompt: 'one' }, { prompt: 'two' }] });
    const [call] = await linesWhere((line) => line.msg === 'call' && line.procedure === 'batch' && line.batchId === batchId);
    assert.ok(call);
    await Promise.all(ids.map((id) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
    const creates = await linesWhere((line) => line.msg === 'job finished' && line.phase === 'create' && line.batchId === batchId, 2);
    assert.deepEqual(creates.map((line) => line.generationId).sort(), [...ids].sort());
    for (const line of creates) assert.equal(line.requestId, call.requestId);
  });

  it('makes its own request id when the incoming one is missing or not sane, and answers it', async () => {
    const health = await fetch(`${kiln.url}/health`);
    assert.match(health.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    const odd = await fetch(`${kiln.url}/assets/nothing-here`, { headers: { 'x-request-id': 'two words' } });
    assert.equal(odd.status, 404);
    const made = odd.headers.get('x-request-id') ?? '';
    assert.match(made, /^[0-9a-f-]{36}$/);
    const [line] = await linesWhere((entry) => entry.msg === 'request' && entry.requestId === made);
    assert.equal(line?.path, '/assets/nothing-here');
    assert.equal(line?.status, 404);
    assert.equal(line?.method, 'GET');
    assert.equal(line?.level, 'info');
    // Probes and scrapes are at debug level: every second, they would drown the rest.
    const [probe] = await linesWhere((entry) => entry.msg === 'request' && entry.path === '/health');
    assert.equal(probe?.level, 'debug');
  });

  it('logs a request that tRPC never ran, and each call of an HTTP batch, under one request id', async () => {
    const tooLarge = await fetch(`${kiln.url}/trpc/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${kiln.apiKey}`, 'x-request-id': 'big-1' },
      body: JSON.stringify({ prompt: 'x'.repeat(5 * 1024 * 1024) }),
    });
    assert.equal(tooLarge.status, 413);
    const [refused] = await linesWhere((line) => line.requestId === 'big-1');
    assert.equal(refused?.msg, 'request');
    assert.equal(refused?.status, 413);

    const batched = await fetch(`${kiln.url}/trpc/models,ops.stats?batch=1&input=${encodeURIComponent('{}')}`, {
      headers: { authorization: `Bearer ${kiln.apiKey}`, 'x-request-id': 'pair-1' },
    });
    assert.equal(batched.status, 200);
    const calls = await linesWhere((line) => line.requestId === 'pair-1', 2);
    assert.deepEqual(calls.map((line) => `${line.msg} ${String(line.procedure)}`).sort(), ['call models', 'call ops.stats']);
  });

  it('never writes a credential: not the API key, the admin token nor the provider token', async () => {
    await fetch(`${kiln.url}/trpc/models`, { headers: { authorization: 'Bearer not-a-key-but-secret-looking' } });
    await linesWhere((line) => line.procedure === 'models' && line.code === 'UNAUTHORIZED');
    const text = raw.join('\n');
    assert.ok(text.length > 0);
    assert.ok(!text.includes(kiln.apiKey), 'the API key');
    assert.ok(!text.includes('not-a-key-but-secret-looking'), 'a presented credential');
    const simulator = kiln.app.simulator;
    assert.ok(simulator);
    assert.ok(!text.includes(simulator.apiToken), 'the provider token');
    assert.ok(!text.includes(simulator.webhookSecret), 'the webhook secret');
  });
});
