// One job's run, as logs and traces see it: one line when it ends (phase, outcome, duration, and
// the ids that tie it to its API request and its provider prediction), and one span, a child of
// the API call that queued the generation, with the run's own steps (provider call, render,
// store) as its children. The generation row carries that call's request id and traceparent
// (migration 0017), so a job of any phase — made by the dispatcher, a webhook or another phase —
// links to it once the phase has read the row.
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { Generation } from '../../db/schema.ts';
import type { LogFields, Logger } from '../logger.ts';
import { contextFromTraceparent } from './trace-context.ts';

/** What a run learns of its generation from the row. */
export type GenerationIds = Pick<Generation, 'id' | 'batch_id' | 'prediction_id' | 'request_id' | 'traceparent' | 'attempt'>;

export interface PhaseRun {
  /** The worker's logger with this run's ids bound (those known so far). */
  readonly logger: Logger;
  /** The generation this run works on: its ids join the run's line, and its span's parent is the call that queued it. */
  describe(generation: GenerationIds): void;
  /** A prediction id learnt during the run (a create). */
  notePrediction(predictionId: string): void;
  /** What came of the run, when it is more than "completed": created, waiting, deferred, retry, fail… */
  outcome(outcome: string): void;
  /** Runs one step of the job in a child span of the run's. */
  step<T>(name: string, attributes: Attributes, work: () => Promise<T>, kind?: SpanKind): Promise<T>;
}

export interface PhaseRunStart {
  tracer: Tracer;
  logger: Logger;
  /** create, poll, finish, copy, cancel… */
  phase: string;
  queue: string;
  jobId: string;
  /** Retries of this job so far. */
  retry: number;
  generationId: string | undefined;
  predictionId?: string | undefined;
}

/** A run that reports itself when `end` is called: once, with what it learnt. */
export interface EndablePhaseRun extends PhaseRun {
  end(error?: unknown): void;
}

export function startPhaseRun(start: PhaseRunStart): EndablePhaseRun {
  const startedAt = performance.now();
  const startTime = Date.now();
  const fields: LogFields = { phase: start.phase, jobId: start.jobId, generationId: start.generationId, predictionId: start.predictionId };
  let logger = start.logger.child(withoutEmpty(fields));
  let span: Span | undefined;
  let outcome: string | undefined;

  const openSpan = (traceparent: string | null | undefined): Span => {
    // Started when the row has been read (only then is the parent known), dated from the job's start.
    span ??= start.tracer.startSpan(
      `job ${start.phase}`,
      {
        kind: SpanKind.CONSUMER,
        startTime,
        attributes: withoutEmpty({
          'messaging.system': 'pg-boss',
          'messaging.operation.type': 'process',
          'messaging.destination.name': start.queue,
          'messaging.message.id': start.jobId,
          'kiln.phase': start.phase,
          'kiln.retry': start.retry,
          'kiln.generation_id': fields.generationId,
          'kiln.batch_id': fields.batchId,
          'kiln.prediction_id': fields.predictionId,
          'kiln.request_id': fields.requestId,
          'kiln.attempt': fields.attempt,
        }) as Attributes,
      },
      contextFromTraceparent(traceparent),
    );
    return span;
  };

  const rebind = () => {
    const traceId = span?.spanContext().traceId;
    logger = start.logger.child(withoutEmpty({ ...fields, ...(span?.isRecording() && traceId ? { traceId } : {}) }));
  };

  return {
    get logger() {
      return logger;
    },
    describe(generation) {
      Object.assign(fields, {
        generationId: generation.id,
        batchId: generation.batch_id ?? undefined,
        predictionId: fields.predictionId ?? generation.prediction_id ?? undefined,
        requestId: generation.request_id ?? undefined,
        attempt: generation.attempt,
      });
      openSpan(generation.traceparent);
      rebind();
    },
    notePrediction(predictionId) {
      fields.predictionId = predictionId;
      span?.setAttribute('kiln.prediction_id', predictionId);
      rebind();
    },
    outcome(value) {
      outcome = value;
    },
    async step(name, attributes, work, kind = SpanKind.INTERNAL) {
      const parent = trace.setSpan(contextFromTraceparent(undefined), openSpan(undefined));
      const child = start.tracer.startSpan(name, { kind, attributes }, parent);
      try {
        return await work();
      } catch (error) {
        child.recordException(error instanceof Error ? error : String(error));
        child.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        throw error;
      } finally {
        child.end();
      }
    },
    end(error) {
      const result = outcome ?? (error === undefined ? 'completed' : 'failed');
      const durationMs = Math.round((performance.now() - startedAt) * 10) / 10;
      const ended = openSpan(undefined);
      ended.setAttribute('kiln.outcome', result);
      if (error !== undefined) {
        ended.recordException(error instanceof Error ? error : String(error));
        ended.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      }
      ended.end();
      // One line per run; a run that throws goes back to pg-boss (retried or dead-lettered), which is worth a warning.
      const line = { outcome: result, durationMs, retry: start.retry };
      if (error === undefined) logger.info('job finished', line);
      else logger.warn('job finished', { ...line, error: error instanceof Error ? error.message : String(error) });
    },
  };
}

function withoutEmpty(fields: LogFields): LogFields {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined && value !== null));
}
