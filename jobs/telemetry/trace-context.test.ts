import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INVALID_SPAN_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { contextFromTraceparent, formatTraceparent, parseTraceparent } from './trace-context.ts';

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const spanId = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('formats a span context and reads it back', () => {
    const text = formatTraceparent({ traceId, spanId, traceFlags: TraceFlags.SAMPLED });
    assert.equal(text, `00-${traceId}-${spanId}-01`);
    assert.deepEqual(parseTraceparent(text), { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
  });

  it('keeps the sampled flag as it was, sampled or not', () => {
    assert.equal(parseTraceparent(`00-${traceId}-${spanId}-00`)?.traceFlags, TraceFlags.NONE);
    assert.equal(formatTraceparent({ traceId, spanId, traceFlags: TraceFlags.NONE }), `00-${traceId}-${spanId}-00`);
  });

  it('formats nothing for a span outside any trace (no SDK)', () => {
    assert.equal(formatTraceparent(INVALID_SPAN_CONTEXT), undefined);
  });

  it('refuses malformed, forbidden and all-zero values', () => {
    for (const value of [
      undefined,
      '',
      'nonsense',
      `00-${traceId}-${spanId}`,
      `00-${traceId.toUpperCase()}-${spanId}-01`,
      `ff-${traceId}-${spanId}-01`,
      `00-${traceId}-${spanId}-01-extra`,
      `00-${'0'.repeat(32)}-${spanId}-01`,
      `00-${traceId}-${'0'.repeat(16)}-01`,
    ]) {
      assert.equal(parseTraceparent(value), undefined, String(value));
    }
  });

  it('reads a later version, ignoring what it adds', () => {
    assert.equal(parseTraceparent(`01-${traceId}-${spanId}-01-more`)?.spanId, spanId);
  });

  it('makes a parent context from a traceparent, or the root context without one', () => {
    assert.equal(trace.getSpanContext(contextFromTraceparent(`00-${traceId}-${spanId}-01`))?.spanId, spanId);
    assert.equal(trace.getSpanContext(contextFromTraceparent(undefined)), undefined);
  });
});
