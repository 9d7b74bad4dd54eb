// What the worker reports for monitoring, as a port: jobs/ says what happened, server/ decides
// how it is exposed (Prometheus, see server/metrics/). Every call is a counter or histogram step
// in memory — nothing here may cost a query or a wait.
import type { CallKind } from './provider/provider.ts';

/** The worker's queues as phases: what a job's duration and wait are reported under. */
export type JobPhase = 'create' | 'poll' | 'finish' | 'copy' | 'assemble' | 'cancel' | 'dead';

/** How a job ended: completed (whatever became of its generation), or failed (pg-boss retries it, or it died). */
export type JobOutcome = 'completed' | 'failed';

/**
 * How one provider call ended: ok; failed (transient: 5xx, network, timeout after retries);
 * rejected (permanent: the provider refused the input); rate_limited (a 429, or no budget slot
 * soon enough); circuit_open; busy (the bulkhead was full); canceled (by the caller).
 */
export type ProviderCallOutcome = 'ok' | 'failed' | 'rejected' | 'rate_limited' | 'circuit_open' | 'busy' | 'canceled';

/** Whose work a successful generation was: its own provider call, or served from another's image. */
export type ServedFrom = 'own' | 'cache' | 'joined';

export interface JobMetrics {
  /** A job ran: seconds from when it was due to when it started (queue time), and how long it ran. */
  jobRan(phase: JobPhase, outcome: JobOutcome, timing: { waitedSeconds: number; ranSeconds: number }): void;
  /** A generation's first attempt started: how long it waited in Kiln's queue (fair share, budget). */
  generationStarted(queuedSeconds: number): void;
  /** A generation succeeded: its time from queued to done, and what its tenant was charged (micro-dollars). */
  generationSucceeded(success: { tenantId: string; servedFrom: ServedFrom; seconds: number; chargedMicroUsd: number }): void;
  /** Images rendered and stored for a generation (the original counts as one). */
  imagesStored(images: readonly { kind: 'original' | 'variant'; format: string; bytes: number }[]): void;
  /** One provider call through the policies (retries included), and how it ended. */
  providerCall(kind: CallKind, outcome: ProviderCallOutcome, seconds: number): void;
  /** The provider answered 429. */
  providerThrottled(kind: CallKind): void;
  /** A call got its budget slot after waiting this long, or (undefined) was refused one and steps aside. */
  budgetSlot(kind: CallKind, waitedSeconds: number | undefined): void;
}

/** For callers (tests, tools) that report nothing. */
export const NO_JOB_METRICS: JobMetrics = {
  jobRan() {},
  generationStarted() {},
  generationSucceeded() {},
  imagesStored() {},
  providerCall() {},
  providerThrottled() {},
  budgetSlot() {},
};
