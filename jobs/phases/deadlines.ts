// The deadline rule, in one place. Every generation has a deadline (`deadline_at`, set when it
// is queued: the caller's `deadlineSeconds`, or the configured default). By then it is final:
//   - not created at the provider yet → it fails without a create;
//   - created → the provider is told to end it then (Cancel-After), the wait phase's polls are
//     never scheduled past it, and the poll that falls on it cancels the prediction and fails
//     the generation;
//   - ended by the provider (`aborted`: never started; `canceled` once the deadline passed) →
//     it fails as `deadline_exceeded` too.
// A prediction that succeeded in time is downloaded and rendered even if that ends after it.
import type { Generation } from '../../db/schema.ts';

type Dated = Pick<Generation, 'deadline_at'>;

/** What a client reads when a generation misses its deadline, by where it was. */
export const DEADLINE_MISSED = {
  beforeCreate: 'not started before its deadline',
  atProvider: 'not finished before its deadline; the prediction was canceled',
  neverStarted: 'the prediction did not start before its deadline',
} as const;

export function msUntilDeadline(generation: Dated, now = Date.now()): number {
  return generation.deadline_at.getTime() - now;
}

export function isPastDeadline(generation: Dated, now = Date.now()): boolean {
  return msUntilDeadline(generation, now) <= 0;
}

/** A wait that must not outlast the deadline: the next look falls on it at the latest. */
export function capAtDeadline(delayMs: number, generation: Dated, now = Date.now()): number {
  return Math.max(0, Math.min(delayMs, msUntilDeadline(generation, now)));
}

/**
 * The Cancel-After to send with a create: the time left, but never below what the provider
 * accepts (Replicate: 5 s). Closer than that, the wait phase ends the generation on time itself.
 */
export function cancelAfterSeconds(generation: Dated, minimumSeconds: number, now = Date.now()): number {
  return Math.max(minimumSeconds, Math.ceil(msUntilDeadline(generation, now) / 1000));
}
