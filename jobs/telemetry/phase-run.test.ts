import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { TracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import type { LogFields, Logger } from '../logger.ts';
import { startPhaseRun, type PhaseRunStart } from './phase-run.ts';

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const callSpanId = '00f067aa0ba902b7';

/** Lines as the port receives them, with the child loggers' fields merged in. */
function captureLogger(lines: (LogFields & { level: string; message: string })[], bound: LogFields = {}): Logger {
  const at = (level: string) => (message: string, fields?: LogFields) => lines.push({ ...bound, ...fields, level, message });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => captureLogger(lines, { ...bound, ...fields }) };
}

function setUp(overrides: Partial<PhaseRunStart> = {}) {
  const exporter = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer('test');
  const lines: (LogFields & { level: string; message: string })[] = [];
  const run = startPhaseRun({ tracer, logger: captureLogger(lines), phase: 'finish', queue: 'kiln-finish', jobId: 'job-1', retry: 0, generationId: 'g-1', ...overrides });
  return { exporter, lines, run };
}

const generation = { id: 'g-1', batch_id: 'b-1', prediction_id: 'p-1', request_id: 'r-1', traceparent: `00-${traceId}-${callSpanId}-01`, attempt: 2 };

describe('a phase run', () => {
  it('logs one line with its phase, outcome, duration and the ids of its generation', async () => {
    const { lines, run } = setUp();
    run.describe(generation);
    run.outcome('succeeded');
    run.end();
    assert.equal(lines.length, 1);
    const [line] = lines;
    assert.equal(line?.message, 'job finished');
    assert.equal(line?.level, 'info');
    assert.deepEqual(
      { phase: line?.phase, outcome: line?.outcome, generationId: line?.generationId, batchId: line?.batchId, predictionId: line?.predictionId, requestId: line?.requestId, attempt: line?.attempt, traceId: line?.traceId },
      { phase: 'finish', outcome: 'succeeded', generationId: 'g-1', batchId: 'b-1', predictionId: 'p-1', requestId: 'r-1', attempt: 2, traceId },
    );
    assert.equal(typeof line?.durationMs, 'number');
  });

  it('makes its span a child of the call that queued the generation, and its steps children of its span', async () => {
    const { exporter, run } = setUp();
    run.describe(generation);
    await run.step('render', { 'kiln.variants': 3 }, async () => 'rendered');
    await run.step('store', {}, async () => undefined);
    run.end();
    const spans = exporter.getFinishedSpans();
    const job = spans.find((span) => span.name === 'job finish');
    assert.ok(job);
    assert.equal(job.spanContext().traceId, traceId);
    assert.equal(job.parentSpanContext?.spanId, callSpanId);
    assert.equal(job.attributes['kiln.generation_id'], 'g-1');
    assert.equal(job.attributes['kiln.outcome'], 'completed');
    for (const name of ['render', 'store']) {
      const step = spans.find((span) => span.name === name);
      assert.equal(step?.parentSpanContext?.spanId, job.spanContext().spanId, name);
    }
  });

  it('marks a run that throws, and a step that throws, as errors, and warns', async () => {
    const { exporter, lines, run } = setUp();
    run.describe(generation);
    await assert.rejects(run.step('provider download', {}, async () => Promise.reject(new Error('reset'))));
    run.end(new Error('reset'));
    const spans = exporter.getFinishedSpans();
    assert.ok(spans.every((span) => span.status.code === SpanStatusCode.ERROR));
    assert.equal(lines[0]?.level, 'warn');
    assert.equal(lines[0]?.outcome, 'failed');
  });

  it('still reports a run whose generation is gone, as a span of its own', () => {
    const { exporter, lines, run } = setUp({ predictionId: 'p-9' });
    run.outcome('stale');
    run.end();
    assert.equal(lines[0]?.outcome, 'stale');
    assert.equal(lines[0]?.predictionId, 'p-9');
    assert.equal(exporter.getFinishedSpans()[0]?.parentSpanContext, undefined);
  });
});
