// What can go wrong talking to the provider, as values the worker can decide on.

/** Worth retrying: network failures, timeouts, 5xx, throttling. */
export class TransientProviderError extends Error {
  override name = 'TransientProviderError';
  readonly status: number | undefined;
  /** The provider's own hint for when to try again (429), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Retrying cannot help: invalid input, authentication, unknown model, content rejected. */
export class PermanentProviderError extends Error {
  override name = 'PermanentProviderError';
  readonly status: number | undefined;
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** The circuit breaker is open: the provider is failing, so we do not call it right now. */
export class ProviderUnavailableError extends Error {
  override name = 'ProviderUnavailableError';
}

export function isTransient(error: unknown): error is TransientProviderError {
  return error instanceof TransientProviderError;
}
