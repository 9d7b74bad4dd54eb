// Resilience around every provider call, composed rather than nested (outermost first):
//   retry → circuit breaker → bulkhead → shared rate limit → timeout → the call
// Retry waits with exponential backoff and jitter, or as long as a 429 told us to. Reads and
// cancels are retried on any transient failure; a create only when the failure proves nothing
// was created (a 429, a refused connection) — after a timeout or a 5xx a prediction may exist,
// and creating again could bill twice. The breaker opens on a burst of failures that say the
// provider is unwell (5xx, timeouts, network) — not on 429s, which say it is busy — and fails
// fast while open. The bulkhead bounds concurrent provider calls per process, with a bounded
// queue. The rate limit (shared by all processes, see rate-limiter.ts) gives each attempt its
// slot; a 429 pauses the budget for everyone and the call steps aside (RateLimitedError)
// rather than retrying here. The timeout bounds each attempt (cooperatively: the call's fetch
// honours the signal) and starts once the slot is ours.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  DelegateBackoff,
  TimeoutStrategy,
  bulkhead,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  wrap,
} from 'cockatiel';
import { NO_JOB_METRICS, type JobMetrics, type ProviderCallOutcome } from '../metrics.ts';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from './errors.ts';
import type { CallKind } from './provider.ts';
import type { ProviderRateLimiter } from './rate-limiter.ts';

export interface ProviderPolicyOptions {
  /** Per attempt. */
  timeoutMs: number;
  retry: { maxAttempts: number; backoffBaseMs: number; backoffMaxMs: number };
  breaker: { consecutiveFailures: number; halfOpenAfterMs: number };
  bulkhead: { maxConcurrentCalls: number; maxQueuedCalls: number };
  /** The shared provider budgets; without one, 429s are retried after the provider's hint. */
  limiter?: ProviderRateLimiter;
  random?: () => number;
  /** Where each call's outcome and time, and each 429, are reported. */
  metrics?: JobMetrics;
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface ProviderPolicies {
  /** `slotBooked`: the first attempt's slot was booked by the dispatcher; retries book their own. */
  execute<T>(kind: CallKind, call: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal, options?: { slotBooked?: boolean }): Promise<T>;
  breakerState(): BreakerState;
}

export function createProviderPolicies(options: ProviderPolicyOptions): ProviderPolicies {
  const random = options.random ?? Math.random;
  const { backoffBaseMs, backoffMaxMs } = options.retry;
  const backoff = new DelegateBackoff<{ attempt: number; result: { error: unknown } | { value: unknown } }>((context) => {
    const error = 'error' in context.result ? context.result.error : undefined;
    if (error instanceof TransientProviderError && error.retryAfterMs !== undefined) {
      return Math.min(error.retryAfterMs, backoffMaxMs) + random() * backoffBaseMs;
    }
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** (context.attempt - 1));
    return ceiling / 2 + (random() * ceiling) / 2; // "equal jitter": never zero, never in lockstep
  });
  const retryOptions = { maxAttempts: options.retry.maxAttempts - 1, backoff };
  const retryReads = retry(handleWhen((error) => error instanceof TransientProviderError), retryOptions);
  const retryCreates = retry(handleWhen((error) => error instanceof TransientProviderError && !error.ambiguous), retryOptions);

  const breaker = circuitBreaker(
    handleWhen((error) => error instanceof TransientProviderError && error.status !== 429),
    { halfOpenAfter: options.breaker.halfOpenAfterMs, breaker: new ConsecutiveBreaker(options.breaker.consecutiveFailures) },
  );
  const limit = bulkhead(options.bulkhead.maxConcurrentCalls, options.bulkhead.maxQueuedCalls);
  const perAttempt = timeout(options.timeoutMs, TimeoutStrategy.Cooperative);
  const policies = { read: wrap(retryReads, breaker, limit), create: wrap(retryCreates, breaker, limit) };
  const { limiter } = options;
  const metrics = options.metrics ?? NO_JOB_METRICS;

  /** One attempt: wait for our slot in the shared budget, then call within the timeout. */
  async function attempt<T>(kind: CallKind, call: (signal: AbortSignal) => Promise<T>, attemptSignal: AbortSignal, callerSignal: AbortSignal | undefined, slotBooked: boolean): Promise<T> {
    if (!slotBooked) await limiter?.acquire(kind, attemptSignal);
    return perAttempt.execute(async (context) => {
      try {
        return await call(context.signal);
      } catch (error) {
        // Cut off by our per-attempt timeout (not by the caller): transient, and ambiguous.
        if (context.signal.aborted && !callerSignal?.aborted) {
          throw new TransientProviderError(`provider call timed out after ${options.timeoutMs} ms`, {
            publicReason: 'the provider did not answer in time',
            ambiguous: true,
            cause: error,
          });
        }
        if (error instanceof TransientProviderError && error.status === 429) metrics.providerThrottled(kind);
        if (limiter && error instanceof TransientProviderError && error.status === 429) {
          const pausedMs = await limiter.throttled(kind, error.retryAfterMs);
          throw new RateLimitedError(`provider answered 429; ${kind} calls paused for ${pausedMs} ms`, { retryInMs: pausedMs, cause: error });
        }
        throw error;
      }
    }, attemptSignal);
  }

  return {
    async execute(kind, call, signal, executeOptions) {
      let booked = executeOptions?.slotBooked === true;
      const startedAt = performance.now();
      try {
        const value = await policies[kind].execute((context) => {
          const slotBooked = booked;
          booked = false; // only the first attempt has a booked slot
          return attempt(kind, call, context.signal, signal, slotBooked);
        }, signal);
        metrics.providerCall(kind, 'ok', (performance.now() - startedAt) / 1000);
        return value;
      } catch (error) {
        metrics.providerCall(kind, callOutcome(error, signal), (performance.now() - startedAt) / 1000);
        if (error instanceof BrokenCircuitError) throw new ProviderUnavailableError('circuit open: provider calls are paused', { retryInMs: options.breaker.halfOpenAfterMs, cause: error });
        if (error instanceof BulkheadRejectedError) {
          throw new TransientProviderError('too many concurrent provider calls in this process', {
            publicReason: 'Kiln is busy calling the provider',
            ambiguous: false,
            cause: error,
          });
        }
        throw error;
      }
    },
    breakerState() {
      switch (breaker.state) {
        case CircuitState.Closed:
          return 'closed';
        case CircuitState.Open:
          return 'open';
        case CircuitState.HalfOpen:
          return 'half-open';
        default:
          return 'isolated';
      }
    },
  };
}

/** How a failed call ended, for the metrics: by the error the policies let out. */
function callOutcome(error: unknown, signal: AbortSignal | undefined): ProviderCallOutcome {
  if (signal?.aborted) return 'canceled';
  if (error instanceof BrokenCircuitError) return 'circuit_open';
  if (error instanceof BulkheadRejectedError) return 'busy';
  if (error instanceof RateLimitedError) return 'rate_limited';
  if (error instanceof PermanentProviderError) return 'rejected';
  return 'failed';
}
