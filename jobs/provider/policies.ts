// Resilience around every provider call, composed rather than nested (outermost first):
//   retry → circuit breaker → bulkhead → timeout → the call
// Retry sees only transient failures and waits with exponential backoff and full jitter, or as
// long as a 429 told us to. The breaker opens on a burst of failures and fails fast while open.
// The bulkhead bounds concurrent provider HTTP calls per process, with a bounded queue.
// The timeout bounds each single attempt.
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  DelegateBackoff,
  TaskCancelledError,
  TimeoutStrategy,
  bulkhead,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  wrap,
} from 'cockatiel';
import { ProviderUnavailableError, TransientProviderError } from './errors.ts';

export interface ProviderPolicyOptions {
  /** Per attempt. */
  timeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  breakerConsecutiveFailures: number;
  breakerHalfOpenAfterMs: number;
  maxConcurrentCalls: number;
  maxQueuedCalls: number;
  random?: () => number;
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface ProviderPolicies {
  execute<T>(call: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
  breakerState(): BreakerState;
}

export function createProviderPolicies(options: ProviderPolicyOptions): ProviderPolicies {
  const random = options.random ?? Math.random;
  const transient = handleWhen((error) => error instanceof TransientProviderError);

  const backoff = new DelegateBackoff<{ attempt: number; result: { error: unknown } | { value: unknown } }>((context) => {
    const error = 'error' in context.result ? context.result.error : undefined;
    if (error instanceof TransientProviderError && error.retryAfterMs !== undefined) {
      return Math.min(error.retryAfterMs, options.backoffMaxMs) + random() * options.backoffBaseMs;
    }
    const ceiling = Math.min(options.backoffMaxMs, options.backoffBaseMs * 2 ** (context.attempt - 1));
    return ceiling / 2 + (random() * ceiling) / 2; // "equal jitter": never zero, never in lockstep
  });

  const retryPolicy = retry(transient, { maxAttempts: options.maxAttempts - 1, backoff });
  const breaker = circuitBreaker(transient, {
    halfOpenAfter: options.breakerHalfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.breakerConsecutiveFailures),
  });
  const limit = bulkhead(options.maxConcurrentCalls, options.maxQueuedCalls);
  const perAttempt = timeout(options.timeoutMs, TimeoutStrategy.Aggressive);
  const policy = wrap(retryPolicy, breaker, limit, perAttempt);

  return {
    async execute(call, signal) {
      try {
        return await policy.execute(async (context) => {
          try {
            return await call(context.signal);
          } catch (error) {
            // An attempt cut off by our own per-attempt timeout is transient; a caller's abort is not.
            if (context.signal.aborted && !signal?.aborted) {
              throw new TransientProviderError(`provider call timed out after ${options.timeoutMs} ms`, { cause: error });
            }
            throw error;
          }
        }, signal);
      } catch (error) {
        throw translate(error, options, signal);
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

function translate(error: unknown, options: ProviderPolicyOptions, signal: AbortSignal | undefined): unknown {
  if (error instanceof BrokenCircuitError) {
    return new ProviderUnavailableError('the provider is failing repeatedly; calls are paused (circuit open)', { cause: error });
  }
  if (error instanceof BulkheadRejectedError) {
    return new TransientProviderError('too many concurrent provider calls in this process', { cause: error });
  }
  if (error instanceof TaskCancelledError && !signal?.aborted) {
    return new TransientProviderError(`provider call timed out after ${options.timeoutMs} ms`, { cause: error });
  }
  return error;
}
