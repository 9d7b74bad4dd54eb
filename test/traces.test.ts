// Traces, as an operator with an OpenTelemetry SDK sees them: one generation through the typed
// client makes one trace — the API call, each job phase in the worker process, and under them
// the provider calls, the render and the store — linked across processes through the generation
// row the API wrote. Each process gets its own TracerProvider (createApp's option), so nothing
// here touches the API's global provider.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { TracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { createKilnClient } from '../client-sdk/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const recorder = () => {
  const exporter = new InMemorySpanExporter();
  return { exporter, provider: new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }) };
};

describe('traces', () => {
  const apiSpans = recorder();
  const workerSpans = recorder();
  let api: TestKiln;
  let worker: TestKiln;
  before(async () => {
    // Polls only (no webhooks between the processes), so the wait phase's spans are there too.
    api = await startKiln({ env: { KILN_ROLE: 'api', KILN_WEBHOOKS: 'off' }, tracerProvider: apiSpans.provider });
    worker = await startKiln({ databaseUrl: api.databaseUrl, dataDir: api.dataDir, env: { KILN_ROLE: 'worker', KILN_WEBHOOKS: 'off' }, tracerProvider: workerSpans.provider });
  });
  after(async () => {
    await worker?.stop();
    await api?.stop();
  });

  it('follow a generation from the client through the API, the worker phases, the provider, the render and the store', async () => {
    // The client is itself traced: its traceparent header makes the API call a child of its span.
    const clientTraceId = '0af7651916cd43dd8448eb211c80319c';
    const clientSpanId = 'b7ad6b7169203331';
    const client = createKilnClient({
      url: api.url,
      apiKey: api.apiKey,
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('traceparent', `00-${clientTraceId}-${clientSpanId}-01`);
        return fetch(input, { ...init, headers });
      },
    });
    let id: string;
    try {
      ({ id } = await client.generate({ prompt: 'a traced kiln', platforms: ['instagram-post', 'thumbnail'], formats: ['webp'] }));
    } finally {
      client.close();
    }
    const done = await api.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded');
    const finished = await waitForSpan(workerSpans.exporter, (span) => span.name === 'job finish' && span.attributes['kiln.generation_id'] === id);

    const [call, ...moreCalls] = apiSpans.exporter.getFinishedSpans().filter((span) => span.name === 'trpc generate');
    assert.ok(call);
    assert.equal(moreCalls.length, 0);
    assert.equal(call.kind, SpanKind.SERVER);
    assert.equal(call.spanContext().traceId, clientTraceId, 'the call continues the client trace');
    assert.equal(call.parentSpanContext?.spanId, clientSpanId);
    assert.equal(call.attributes['kiln.generation_id'], id);
    assert.equal(typeof call.attributes['kiln.request_id'], 'string');

    // Everything the worker did for this generation is in the same trace.
    const work = workerSpans.exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === clientTraceId);
    const named = (name: string) => work.filter((span) => span.name === name);
    const childOf = (parent: ReadableSpan, name: string) => work.filter((span) => span.name === name && span.parentSpanContext?.spanId === parent.spanContext().spanId);

    // Each job phase is a child of the API call, in another process.
    const [create] = named('job create');
    assert.ok(create, 'the create phase');
    const polls = named('job poll');
    assert.ok(polls.length >= 1, 'the wait phase polled');
    assert.equal(finished.spanContext().traceId, clientTraceId);
    for (const phase of [create, ...polls, finished]) {
      assert.equal(phase.parentSpanContext?.spanId, call.spanContext().spanId, `${phase.name} is a child of the call`);
      assert.equal(phase.kind, SpanKind.CONSUMER);
      assert.equal(phase.attributes['kiln.generation_id'], id);
      assert.equal(phase.attributes['kiln.request_id'], call.attributes['kiln.request_id']);
    }
    assert.equal(create.attributes['kiln.outcome'], 'created');
    assert.equal(create.attributes['kiln.prediction_id'], done.predictionId);
    assert.equal(finished.attributes['kiln.outcome'], 'succeeded');
    assert.equal(finished.attributes['kiln.prediction_id'], done.predictionId);

    // Under the phases: the provider calls, then the download, the render and the store.
    const [providerCreate] = childOf(create, 'provider create');
    assert.equal(providerCreate?.kind, SpanKind.CLIENT);
    assert.ok(polls.every((poll) => childOf(poll, 'provider get').length === 1), 'each poll asked the provider once');
    assert.equal(childOf(finished, 'provider download').length, 1);
    const [render] = childOf(finished, 'render');
    assert.equal(render?.attributes['kiln.variants'], 2);
    const [store] = childOf(finished, 'store');
    assert.equal(store?.attributes['kiln.assets'], 3, 'the original and two variants');
    assert.ok((store?.attributes['kiln.bytes'] as number) > 0);
    // In order: rendered before stored, and the run ends after both.
    assert.ok(render && store && hrtimeMs(render.endTime) <= hrtimeMs(store.startTime) + 1);
    assert.ok(hrtimeMs(finished.endTime) >= hrtimeMs(store.endTime));
  });

  it('start a new trace for a call that brings none, which its jobs join', async () => {
    const { id } = await api.client.generate({ prompt: 'untraced client', platforms: ['thumbnail'] });
    const [call] = apiSpans.exporter.getFinishedSpans().filter((span) => span.name === 'trpc generate' && span.attributes['kiln.generation_id'] === id);
    assert.ok(call);
    assert.equal(call.parentSpanContext, undefined, 'a root span');
    await api.client.waitFor(id, { timeoutMs: 60_000 });
    const create = await waitForSpan(workerSpans.exporter, (span) => span.name === 'job create' && span.attributes['kiln.generation_id'] === id);
    assert.equal(create.spanContext().traceId, call.spanContext().traceId);
  });
});

async function waitForSpan(exporter: InMemorySpanExporter, match: (span: ReadableSpan) => boolean, timeoutMs = 30_000): Promise<ReadableSpan> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = exporter.getFinishedSpans().find(match);
    if (found) return found;
    if (Date.now() > until) throw new Error('span not found in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const hrtimeMs = ([seconds, nanos]: [number, number]) => seconds * 1000 + nanos / 1e6;
