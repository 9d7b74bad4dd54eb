// The arithmetic of a GCRA budget (a token bucket kept as one timestamp), in milliseconds.
// `tat` is the theoretical arrival time: when the next call would go if calls were evenly
// spaced. A call may go `tolerance` before it, so after a quiet spell up to `burst` calls go
// back to back; each call moves `tat` one interval on. rate-limits.ts runs the same rule in one
// SQL UPDATE so that every process shares the budget; this module states it plainly, and the
// stats read it back.

export interface BudgetRate {
  perMinute: number;
  /** Calls that may go back to back after a quiet spell. */
  burst: number;
}

export interface BudgetClock {
  tat: number;
  /** After a 429: nobody calls before this. */
  pausedUntil: number;
}

/** Time between calls at the steady rate. */
export const intervalMs = (rate: BudgetRate): number => 60_000 / rate.perMinute;

/** How far ahead of `tat` a call may go: burst − 1 intervals. */
export const toleranceMs = (rate: BudgetRate): number => (Math.max(1, rate.burst) - 1) * intervalMs(rate);

/** The earliest a call asked for at `now` may go. */
export function nextSlot(clock: BudgetClock, rate: BudgetRate, now: number): number {
  return Math.max(clock.tat - toleranceMs(rate), clock.pausedUntil, now);
}

export type Reservation =
  /** Go after `waitMs` (0: now). */
  | { granted: true; waitMs: number }
  /** The budget is booked (or paused) further ahead than the caller would wait. */
  | { granted: false; retryInMs: number };

/** One call's reservation, and the clock after it (unchanged when refused). */
export function reserve(clock: BudgetClock, rate: BudgetRate, now: number, maxWaitMs: number): { reservation: Reservation; clock: BudgetClock } {
  const slot = nextSlot(clock, rate, now);
  if (slot > now + maxWaitMs) return { reservation: { granted: false, retryInMs: slot - now - maxWaitMs }, clock };
  const tat = Math.max(clock.tat, clock.pausedUntil, now) + intervalMs(rate);
  return { reservation: { granted: true, waitMs: slot - now }, clock: { ...clock, tat } };
}

/**
 * After a 429: nobody calls for `ms`, and when the pause ends calls resume at the steady rate —
 * no burst is saved up meanwhile (`tat` is set a full tolerance beyond the pause).
 */
export function pause(clock: BudgetClock, rate: BudgetRate, now: number, ms: number): BudgetClock {
  const until = now + ms;
  return { pausedUntil: Math.max(clock.pausedUntil, until), tat: Math.max(clock.tat, until + toleranceMs(rate)) };
}

/**
 * Up to `max` calls' slots at once, each no later than `now + horizonMs` (the dispatcher books a
 * short stretch of the budget ahead): the slots in order, and the clock after them. The same
 * rule as `reserve`, applied call after call.
 */
export function reserveMany(clock: BudgetClock, rate: BudgetRate, now: number, horizonMs: number, max: number): { slots: number[]; clock: BudgetClock } {
  const slots: number[] = [];
  let current = clock;
  while (slots.length < max) {
    const next = reserve(current, rate, now, horizonMs);
    if (!next.reservation.granted) break;
    slots.push(now + next.reservation.waitMs);
    current = next.clock;
  }
  return { slots, clock: current };
}

export type Admission =
  | { admitted: true }
  /** `retryInMs`: when the same request would be admitted; Infinity when it never fits the burst. */
  | { admitted: false; retryInMs: number };

/**
 * Admits `count` requests at once (a batch counts its items) or none: a request budget refuses
 * rather than queues. They fit when, with `tat` moved on by `count` intervals, the budget is no
 * more than a full burst ahead of now; a refusal leaves the clock as it was.
 */
export function admit(clock: Pick<BudgetClock, 'tat'>, rate: BudgetRate, now: number, count: number): { admission: Admission; tat: number } {
  if (count > Math.max(1, rate.burst)) return { admission: { admitted: false, retryInMs: Number.POSITIVE_INFINITY }, tat: clock.tat };
  const tat = Math.max(clock.tat, now) + count * intervalMs(rate);
  const earliest = tat - Math.max(1, rate.burst) * intervalMs(rate);
  if (earliest > now) return { admission: { admitted: false, retryInMs: earliest - now }, tat: clock.tat };
  return { admission: { admitted: true }, tat };
}
