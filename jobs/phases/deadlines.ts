// The deadline rules, in one place. Two limits, kept apart:
//   - the caller's deadline (`deadline_at`), only when the caller asked for one
//     (`deadlineSeconds`, or a configured default): the generation is final by then, time in
//     Kiln's queue included. Without one, waiting in the queue never fails a generation — a
//     50,000-image batch may take hours to drain.
//   - the prediction's run limit (`prediction_deadline_at`), set when the prediction is
//     created: the configured run time, or the caller's deadline if that comes sooner. The
//     provider is told (Cancel-After, never below the 5 s Replicate accepts).
// Not created yet and past the caller's deadline → fails without a create. Created → polls are
// never scheduled past either limit, and the poll that falls on one cancels the prediction and
// fails the generation. Ended by the provider (`aborted`: never started; `canceled` past a
// limit) → the same failure. A prediction that succeeded in time is downloaded and rendered
// even if that ends after a limit.
import type { Generation } from '../../db/schema.ts';
import type { FailureCode } from './outcomes.ts';

type Limits = Pick<Generation, 'deadline_at' | 'prediction_deadline_at'>;

/** Which limit a generation has run into, if any. */
export type MissedLimit = 'deadline' | 'run-limit';

/** A generation past its deadline before its prediction was created (a run limit starts with the prediction). */
export const NOT_STARTED_BEFORE_DEADLINE = { code: 'deadline_exceeded', message: 'not started before its deadline' } as const satisfies { code: FailureCode; message: string };

/** How a generation fails at each limit once its prediction exists: canceled by us, or ended by the provider before it started. */
export const LIMIT_FAILURES = {
  deadline: {
    code: 'deadline_exceeded',
    atProvider: 'not finished before its deadline; the prediction was canceled',
    neverStarted: 'the prediction did not start before its deadline',
  },
  'run-limit': {
    code: 'prediction_timeout',
    atProvider: 'the prediction ran past its time limit and was canceled',
    neverStarted: 'the provider did not start the prediction within its time limit',
  },
} as const satisfies Record<MissedLimit, { code: FailureCode; atProvider: string; neverStarted: string }>;

/** The caller's deadline has passed (never, without one). */
export function isPastDeadline(generation: Pick<Generation, 'deadline_at'>, now = Date.now()): boolean {
  return generation.deadline_at !== null && generation.deadline_at.getTime() <= now;
}

/** The first limit the generation is past: the caller's deadline before the run limit. */
export function missedLimit(generation: Limits, now = Date.now()): MissedLimit | undefined {
  if (isPastDeadline(generation, now)) return 'deadline';
  if (generation.prediction_deadline_at !== null && generation.prediction_deadline_at.getTime() <= now) return 'run-limit';
  return undefined;
}

/** Time until the nearer limit (Infinity with neither). */
export function msUntilNearestLimit(generation: Limits, now = Date.now()): number {
  const limits = [generation.deadline_at, generation.prediction_deadline_at].flatMap((limit) => (limit === null ? [] : [limit.getTime() - now]));
  return Math.min(Infinity, ...limits);
}

/** A wait that must not outlast a limit: the next look falls on it at the latest. */
export function capAtNearestLimit(delayMs: number, generation: Limits, now = Date.now()): number {
  return Math.max(0, Math.min(delayMs, msUntilNearestLimit(generation, now)));
}

/** When a prediction created now must be finished: after its run time, or at the caller's deadline if sooner. */
export function predictionDeadline(generation: Pick<Generation, 'deadline_at'>, runSeconds: number, now = Date.now()): Date {
  const byRunTime = now + runSeconds * 1000;
  return new Date(generation.deadline_at === null ? byRunTime : Math.min(byRunTime, generation.deadline_at.getTime()));
}

/**
 * The Cancel-After to send with a create ending at `until`: the whole seconds left, but never
 * below what the provider accepts (Replicate: 5 s). Closer than that, Kiln ends it itself.
 */
export function cancelAfterSeconds(until: Date, minimumSeconds: number, now = Date.now()): number {
  return Math.max(minimumSeconds, Math.ceil((until.getTime() - now) / 1000));
}
