// What can go wrong talking to the provider, as values the worker can decide on. Each error
// keeps two texts: `message` with the full detail for the log, and `publicReason`, which is
// safe to show a client (no addresses, no response bodies).

/** Worth retrying: network failures, timeouts, 5xx, throttling. */
export class TransientProviderError extends Error {
  override name = 'TransientProviderError';
  readonly status: number | undefined;
  /** The provider's own hint for when to try again (429), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /**
   * The request may have reached the provider and taken effect (a timeout, a reset, a 5xx).
   * Retrying a create after such a failure could start a second, billed prediction.
   */
  readonly ambiguous: boolean;
  readonly publicReason: string;
  constructor(
    message: string,
    options: { publicReason: string; ambiguous: boolean; status?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.ambiguous = options.ambiguous;
    this.publicReason = options.publicReason;
  }
}

/** Retrying cannot help: invalid input, authentication, unknown model, content rejected. */
export class PermanentProviderError extends Error {
  override name = 'PermanentProviderError';
  readonly status: number | undefined;
  /** The provider's own explanation (e.g. an input validation message), fit for clients. */
  readonly publicReason: string;
  constructor(message: string, options: { publicReason?: string; status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.publicReason = options.publicReason ?? message;
  }
}

/** The circuit breaker is open: the provider is failing, so we do not call it right now. */
export class ProviderUnavailableError extends Error {
  override name = 'ProviderUnavailableError';
  readonly publicReason = 'the provider is failing repeatedly; calls are paused for a while';
  /** When the breaker lets a probe through again. */
  readonly retryInMs: number;
  constructor(message: string, options: { retryInMs: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryInMs = options.retryInMs;
  }
}

/**
 * The shared rate limit has no slot for this call soon enough (the budget is booked ahead, or
 * paused after a 429). Not a failure: the work waits `retryInMs` and goes on.
 */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  readonly retryInMs: number;
  readonly publicReason = 'waiting for the provider rate limit';
  constructor(message: string, options: { retryInMs: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryInMs = options.retryInMs;
  }
}
