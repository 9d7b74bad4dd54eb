// When to look at a prediction next: pure arithmetic, so it can be read and tested alone.
// Without webhooks, the first poll comes near the time the model usually takes, then polls back
// off. With webhooks, a poll is only the backstop for a webhook that never came. Either way all
// predictions in flight together poll no faster than the polls' share of the read budget allows.
import type { Prediction } from '../provider/provider.ts';

export interface PollSettings {
  /** The soonest poll. */
  initialMs: number;
  /** Polls back off by this factor up to `maxMs`. */
  backoffFactor: number;
  maxMs: number;
  /** The first poll comes at this share of the model's typical duration. */
  firstAtShareOfTypical: number;
  /** Weight of each new observation in a model's typical duration. */
  typicalWeight: number;
  /** The share of the read budget polls may use. */
  shareOfReads: number;
}

export interface NextPoll {
  /** Polls of this prediction so far in this attempt. */
  polls: number;
  /** When the prediction was created (ms since the epoch), or 0 when unknown. */
  createdAt: number;
  /** Look soon, webhooks or not (a prediction found again after a crash or a lost answer). */
  soon: boolean;
  /** How long this model's predictions usually take, once learnt. */
  typicalMs: number | undefined;
  /** With webhooks: how long after the expected finish the backstop poll looks. */
  backstopMs: number | undefined;
  /** Predictions awaiting the provider, ours and other workers'. */
  awaiting: number;
  readsPerMinute: number;
  now: number;
}

/** Milliseconds until the next poll (before the deadline caps it). */
export function pollDelayMs(next: NextPoll, settings: PollSettings): number {
  const typical = next.typicalMs ?? 0;
  let delay: number;
  if (next.soon) delay = settings.initialMs;
  else if (next.backstopMs !== undefined) delay = Math.max(0, (next.createdAt || next.now) + typical - next.now) + next.backstopMs;
  else if (next.polls === 0) delay = Math.max(settings.initialMs, typical * settings.firstAtShareOfTypical);
  else delay = Math.min(settings.maxMs, settings.initialMs * settings.backoffFactor ** next.polls);
  // Every prediction we wait on polls at this pace at most, so all polls fit in their share.
  const spacingMs = next.awaiting / ((next.readsPerMinute * settings.shareOfReads) / 60_000);
  return Math.max(delay, spacingMs);
}

/**
 * What an ended prediction says of its model's typical duration: the provider's own time from
 * create to end. Not the time until our poll saw it done, which adds that poll's delay and the
 * queue's pickup lag: learnt from, the next first poll would come later, see it done later
 * still, and the estimate would settle at several times the lag above the real duration.
 * Only successes count: a refused input fails at once, and a cancel cuts a run short.
 * Undefined when the provider does not say (then nothing is learnt, and the polls back off
 * from the soonest interval as for a new model).
 */
export function observedDurationMs(ended: Pick<Prediction, 'status' | 'totalSeconds'>): number | undefined {
  return ended.status === 'succeeded' && ended.totalSeconds !== null ? ended.totalSeconds * 1000 : undefined;
}

/** A model's typical duration after one more observation (a moving average). */
export function learnTypical(before: number | undefined, observedMs: number, settings: Pick<PollSettings, 'typicalWeight'>): number {
  return before === undefined ? observedMs : before * (1 - settings.typicalWeight) + observedMs * settings.typicalWeight;
}
