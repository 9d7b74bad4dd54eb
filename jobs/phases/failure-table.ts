// What the worker does when a step fails: one table for every phase, read top to bottom.
// Each phase catches its errors, asks `decideOnFailure`, and carries the decision out.
//
//            shutting down,      provider busy  transient   permanent                unusable image        unusable source       anything else
//            database away
//   create   abandon             defer          retry       fail provider_rejected   —                     fail unusable_source  retry
//   poll     abandon             poll again     poll again  fail provider_failed     —                     —                     retry
//   finish   abandon             retry          retry       fail unusable_output     fail unusable_output  —                     retry
//   cancel   abandon             retry          retry       drop                     —                     —                     retry
//
// - abandon: nothing is written (the process is stopping, or the database cannot be reached);
//   the job goes back to pg-boss as it is, which runs it again once it can.
// - defer: the generation waits in the queue (`deferred`) until the budget or breaker frees
//   up — not a failure, and not counted as a retry.
// - poll again: ask the provider later (the deadline still bounds the wait: see deadlines.ts).
// - retry: pg-boss runs the job again with exponential backoff and jitter; at the retry limit
//   the generation fails instead (`provider_unavailable` if the provider kept failing,
//   `internal_error` otherwise), and a cancel is given up (the prediction's own Cancel-After
//   still ends it).
// - drop: nothing is left to do (a cancel of a prediction that is gone or already final).
// "Provider busy" is our shared rate limit or the open circuit breaker; "transient" a network
// failure, timeout, 5xx or 429 (jobs/provider/errors.ts); "database away" what
// db/database-unavailable.ts recognises; "unusable source" an input image that is gone from the
// store or does not decode (input-files.ts), found before anything is sent. A copy whose
// original is gone from the store is not a failure of its request: copy-phase.ts sends it back to
// the queue as its own work (or fails it `insufficient_credit` when its tenant cannot pay for that).
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from '../provider/errors.ts';
import { UnusableImageError } from '../render/render-variants.ts';
import { UnusableSourceError } from './input-files.ts';
import type { FailureCode } from './outcomes.ts';

export type Phase = 'create' | 'poll' | 'finish' | 'cancel';

type ErrorKind = 'shutting-down' | 'database-unavailable' | 'provider-busy' | 'transient' | 'permanent' | 'unusable-image' | 'unusable-source' | 'unexpected';

/** `fail`: with the error's public reason, after `saying` if given. */
type Action = 'abandon' | 'defer' | 'poll-again' | 'retry' | 'drop' | { fail: FailureCode; saying?: string };

const TABLE: Record<Phase, Record<ErrorKind, Action>> = {
  create: {
    'shutting-down': 'abandon',
    'database-unavailable': 'abandon',
    'provider-busy': 'defer',
    transient: 'retry',
    permanent: { fail: 'provider_rejected' },
    'unusable-image': 'retry',
    'unusable-source': { fail: 'unusable_source' },
    unexpected: 'retry',
  },
  poll: {
    'shutting-down': 'abandon',
    'database-unavailable': 'abandon',
    'provider-busy': 'poll-again',
    transient: 'poll-again',
    permanent: { fail: 'provider_failed', saying: 'the provider no longer knows the prediction' },
    'unusable-image': 'retry',
    'unusable-source': 'retry',
    unexpected: 'retry',
  },
  finish: {
    'shutting-down': 'abandon',
    'database-unavailable': 'abandon',
    'provider-busy': 'retry',
    transient: 'retry',
    permanent: { fail: 'unusable_output' },
    'unusable-image': { fail: 'unusable_output' },
    'unusable-source': 'retry',
    unexpected: 'retry',
  },
  cancel: {
    'shutting-down': 'abandon',
    'database-unavailable': 'abandon',
    'provider-busy': 'retry',
    transient: 'retry',
    permanent: 'drop',
    'unusable-image': 'retry',
    'unusable-source': 'retry',
    unexpected: 'retry',
  },
};

export type FailureDecision =
  | { kind: 'abandon' }
  | { kind: 'drop' }
  | { kind: 'defer'; inMs: number; reason: string }
  | { kind: 'poll-again'; inMs: number }
  /** `reason` is safe to show a client. */
  | { kind: 'retry'; reason: string }
  | { kind: 'fail'; code: FailureCode; message: string };

export interface FailedJob {
  /** Retries so far, and how many are allowed (pg-boss's counts). */
  retryCount: number;
  retryLimit: number;
  /** The process is stopping (the job's signal aborted). */
  shuttingDown: boolean;
}

export interface PollTiming {
  /** The soonest a poll comes back. */
  initialMs: number;
  /** How long a poll waits after a transient failure. */
  maxMs: number;
}

function kindOf(error: unknown, job: FailedJob): ErrorKind {
  if (job.shuttingDown) return 'shutting-down';
  if (isDatabaseUnavailable(error)) return 'database-unavailable';
  if (error instanceof RateLimitedError || error instanceof ProviderUnavailableError) return 'provider-busy';
  if (error instanceof TransientProviderError) return 'transient';
  if (error instanceof PermanentProviderError) return 'permanent';
  if (error instanceof UnusableImageError) return 'unusable-image';
  if (error instanceof UnusableSourceError) return 'unusable-source';
  return 'unexpected';
}

/** What a client may read about the error (never addresses, bodies or stack traces). */
function publicReason(error: unknown, kind: ErrorKind): string {
  if (error instanceof PermanentProviderError || error instanceof TransientProviderError) return error.publicReason;
  if (error instanceof RateLimitedError || error instanceof ProviderUnavailableError) return error.publicReason;
  if ((kind === 'unusable-image' || kind === 'unusable-source') && error instanceof Error) return error.message;
  return 'internal error';
}

/** `polls`: how the wait phase times a poll that comes again (only the poll phase needs it). */
export function decideOnFailure(phase: Phase, error: unknown, job: FailedJob, polls?: PollTiming): FailureDecision {
  const kind = kindOf(error, job);
  const action = TABLE[phase][kind];
  const reason = publicReason(error, kind);
  const busyForMs = error instanceof RateLimitedError || error instanceof ProviderUnavailableError ? error.retryInMs : 0;
  switch (action) {
    case 'abandon':
    case 'drop':
      return { kind: action };
    case 'defer':
      return { kind: 'defer', inMs: busyForMs, reason };
    case 'poll-again':
      if (!polls) throw new Error(`the ${phase} phase cannot poll again`);
      return { kind: 'poll-again', inMs: Math.max(polls.initialMs, kind === 'transient' ? polls.maxMs : busyForMs) };
    case 'retry':
      if (job.retryCount < job.retryLimit) return { kind: 'retry', reason };
      // A cancel that kept failing is given up: the prediction still ends at its Cancel-After.
      if (phase === 'cancel') return { kind: 'drop' };
      return kind === 'transient' || kind === 'provider-busy'
        ? { kind: 'fail', code: 'provider_unavailable', message: `the provider kept failing: ${reason}` }
        : { kind: 'fail', code: 'internal_error', message: 'processing failed repeatedly' };
    default:
      return { kind: 'fail', code: action.fail, message: action.saying ? `${action.saying}: ${reason}` : reason };
  }
}
