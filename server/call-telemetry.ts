// One log line and one span per tRPC call, over HTTP or WebSocket: procedure, code, duration,
// request id, tenant, and the generation or batch it created or names — the ids that the
// worker's lines for the same generation carry too. The span continues the client's trace
// (its traceparent header) if it sent one; its context is what `generate` and `batch` store
// with their rows, so the jobs' spans become its children.
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { Logger } from '../jobs/logger.ts';
import { contextFromTraceparent, formatTraceparent } from '../jobs/telemetry/trace-context.ts';
import type { CallObserver, CallRecord } from './context.ts';
import { newRequestId } from './request-id.ts';

export interface CallTelemetry {
  logger: Logger;
  tracer: Tracer;
}

/** Procedures whose input names a generation (`id`, `generationId`) or a batch (`batchId`). */
const NAMES_WORK_IN_INPUT = new Set(['status', 'cancel', 'batchStatus', 'cancelBatch', 'onUpdate', 'createToken']);
/** Procedures whose answer carries the generation (`id`) or batch (`batchId`) they queued. */
const QUEUES_WORK = new Set(['generate', 'batch']);

export const createCallObserver = (telemetry: CallTelemetry): CallObserver => (call) => {
  const startedAt = performance.now();
  const { request } = call;
  // An HTTP request's calls share its id; each call on a WebSocket is a request of its own, on its connection.
  const requestId = call.overWebSocket ? newRequestId() : request.id;
  request.calls += 1;
  const span: Span = telemetry.tracer.startSpan(
    `trpc ${call.path}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'trpc', 'rpc.method': call.path, 'kiln.request_id': requestId, 'kiln.transport': call.overWebSocket ? 'ws' : 'http' },
    },
    contextFromTraceparent(request.traceparent),
  );
  const record: CallRecord = { requestId, traceparent: formatTraceparent(span.spanContext()), tenantId: undefined };

  return {
    record,
    async end(result, rawInput) {
      const ids = { ...(QUEUES_WORK.has(call.path) && result.ok ? workIds(result.output) : {}), ...(NAMES_WORK_IN_INPUT.has(call.path) ? workIds(await rawInput().catch(() => undefined)) : {}) };
      const code = result.ok ? 'OK' : result.error.code;
      const status = result.ok ? 200 : getHTTPStatusCodeFromError(result.error);
      if (record.tenantId) span.setAttribute('kiln.tenant_id', record.tenantId);
      if (ids.generationId) span.setAttribute('kiln.generation_id', ids.generationId);
      if (ids.batchId) span.setAttribute('kiln.batch_id', ids.batchId);
      span.setAttribute('kiln.trpc.code', code);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: result.ok ? '' : result.error.message });
      span.end();
      const fields = {
        requestId,
        ...(call.overWebSocket ? { connectionId: request.id } : {}),
        procedure: call.path,
        type: call.type,
        code,
        durationMs: Math.round((performance.now() - startedAt) * 10) / 10,
        ...(record.tenantId ? { tenantId: record.tenantId } : {}),
        ...ids,
        ...(record.traceparent ? { traceId: span.spanContext().traceId } : {}),
      };
      if (status >= 500) telemetry.logger.warn('call', fields);
      else telemetry.logger.info('call', fields);
    },
  };
};

/** The generation and batch ids an input or answer names; nothing else of it is logged. */
function workIds(value: unknown): { generationId?: string; batchId?: string } {
  if (typeof value !== 'object' || value === null) return {};
  const record = value as Record<string, unknown>;
  const generationId = typeof record.generationId === 'string' ? record.generationId : typeof record.id === 'string' ? record.id : undefined;
  const batchId = typeof record.batchId === 'string' ? record.batchId : undefined;
  return { ...(generationId ? { generationId } : {}), ...(batchId ? { batchId } : {}) };
}
