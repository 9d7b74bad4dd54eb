// Carries out what failure-table.ts decided for a failed step. Phases call `handleFailure`
// from their catch blocks and decide nothing themselves.
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts';
import type { Db, Generation } from '../../db/schema.ts';
import { transition } from '../../db/generations.ts';
import type { PhaseRun } from '../telemetry/phase-run.ts';
import { decideOnFailure, type FailureDecision, type Phase, type PollTiming } from './failure-table.ts';
import { failGeneration } from './outcomes.ts';

/** The job a phase runs, as pg-boss describes it, and the run's log line and span. */
export interface JobContext {
  signal: AbortSignal;
  retryCount: number;
  retryLimit: number;
  run: PhaseRun;
}

export interface FailureHandling {
  db: Db;
  /** The generation the job works on, as the attempt that failed holds it (none: nothing to record). */
  generation?: Pick<Generation, 'id' | 'attempt'>;
  /** The create phase's way back to the queue. */
  defer?: (inMs: number, reason: string) => Promise<void>;
  /** The wait phase's way to ask again later, and how it times that. */
  pollAgain?: { timing: PollTiming; schedule: (inMs: number) => Promise<void> };
}

export async function handleFailure(phase: Phase, error: unknown, job: JobContext, how: FailureHandling): Promise<void> {
  const decision = decideOnFailure(phase, error, { retryCount: job.retryCount, retryLimit: job.retryLimit, shuttingDown: job.signal.aborted }, how.pollAgain?.timing);
  job.run.outcome(OUTCOMES[decision.kind]);
  log(phase, error, decision, job.run);
  const generation = how.generation;
  switch (decision.kind) {
    case 'abandon':
      throw error; // the job goes back to the queue as it is
    case 'drop':
      return;
    case 'defer':
      if (!how.defer) throw error;
      return how.defer(decision.inMs, decision.reason);
    case 'poll-again':
      if (!how.pollAgain) throw error;
      return how.pollAgain.schedule(decision.inMs);
    case 'retry':
      if (generation) {
        const { id, attempt } = generation;
        await transition(how.db, { id, attempt, fromStates: ['running'], stage: 'retrying', data: { reason: decision.reason, retry: job.retryCount + 1 } });
      }
      throw error; // pg-boss retries with exponential backoff and jitter
    case 'fail':
      if (!generation) return;
      return failGeneration(how.db, generation.id, generation.attempt, decision.code, decision.message);
  }
}

/** What the run's line says came of it. */
const OUTCOMES: Record<FailureDecision['kind'], string> = {
  abandon: 'abandoned',
  drop: 'dropped',
  defer: 'deferred',
  'poll-again': 'polling-again',
  retry: 'retrying',
  fail: 'failed',
};

/** The run's logger has its phase and ids bound already. */
function log(phase: Phase, error: unknown, decision: FailureDecision, run: PhaseRun): void {
  const { logger } = run;
  const detail = { failedIn: phase, decision: decision.kind, error: error instanceof Error ? error.message : String(error) };
  if (decision.kind === 'abandon' && isDatabaseUnavailable(error)) return logger.warn('step stopped: database unavailable', detail);
  if (decision.kind !== 'retry' && decision.kind !== 'fail') return;
  if (decision.kind === 'fail' && decision.code !== 'internal_error') logger.info('generation failed', { ...detail, code: decision.code });
  else if (decision.kind === 'retry' && decision.reason !== 'internal error') logger.warn('step failed; retrying', detail);
  else logger.error('step failed unexpectedly', { ...detail, stack: error instanceof Error ? error.stack : undefined });
}
