// The few ways a request can fail on purpose. Thrown as values by services; mapped to tRPC
// codes in one place (trpc.ts). Anything else is a bug and reaches clients as a masked 500 —
// except a database that cannot be reached, which is no bug: the request may simply be retried.
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import type { SourceError, SourceErrorReason } from '../jobs/sources/source-error.ts';

export type DomainErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'BAD_REQUEST' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'PAYMENT_REQUIRED' | 'TOO_MANY_REQUESTS' | 'METHOD_NOT_SUPPORTED' | 'PAYLOAD_TOO_LARGE' | 'SERVICE_UNAVAILABLE';

export class DomainError extends Error {
  override name = 'DomainError';
  readonly code: DomainErrorCode;
  /** Field paths of invalid input, when the error is about specific fields. */
  readonly fields: Record<string, string[]> | undefined;
  /** For TOO_MANY_REQUESTS and SERVICE_UNAVAILABLE: when trying again makes sense (HTTP Retry-After, and the error's data). */
  readonly retryAfterSeconds: number | undefined;
  constructor(code: DomainErrorCode, message: string, fields?: Record<string, string[]>, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.fields = fields;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** A restart or failover of PostgreSQL takes seconds: asking again sooner only adds load. */
export const DATABASE_RETRY_AFTER_SECONDS = 2;

/** `field`: the input field that named it (e.g. a request's `sourceId`), for `error.data.fields`. */
export const notFound = (what: string, id: string, field?: string) => {
  const message = `${what} ${id} was not found (it does not exist, or belongs to another tenant)`;
  return new DomainError('NOT_FOUND', message, field === undefined ? undefined : { [field]: [`no such ${what}`] });
};

export const conflict = (message: string) => new DomainError('CONFLICT', message);

export const badRequest = (message: string, fields?: Record<string, string[]>) => new DomainError('BAD_REQUEST', message, fields);

export const unauthorized = (message: string) => new DomainError('UNAUTHORIZED', message);

export const missingApiKey = () => unauthorized('missing API key: send "Authorization: Bearer <key>"');

export const forbidden = (message: string, fields?: Record<string, string[]>) => new DomainError('FORBIDDEN', message, fields);

export const paymentRequired = (message: string) => new DomainError('PAYMENT_REQUIRED', message);

/** Over a limit; `retryAfterSeconds` when waiting helps (a rate limit), none when it does not (a count per connection). */
export const tooManyRequests = (message: string, retryAfterSeconds?: number) =>
  new DomainError('TOO_MANY_REQUESTS', message, undefined, retryAfterSeconds === undefined ? {} : { retryAfterSeconds });

export const tooLarge = (message: string) => new DomainError('PAYLOAD_TOO_LARGE', message);

/** The call is valid but not served this way (e.g. a subscription over plain HTTP). */
export const notServedHere = (message: string) => new DomainError('METHOD_NOT_SUPPORTED', message);

export const databaseUnavailable = (cause?: unknown) =>
  new DomainError('SERVICE_UNAVAILABLE', 'database unavailable, retry in a moment', undefined, { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS, cause });

/**
 * What each refusal of an image source answers. All are the caller's to act on — fix the URL,
 * ask the operator for the host, send another image — so none is a 5xx: a tenant naming a dead
 * URL must not look like Kiln failing (alerts count 5xx). The message says which; the field
 * (`url`, `file`) is where.
 */
const SOURCE_REFUSALS: Record<SourceErrorReason, DomainErrorCode> = {
  invalid_url: 'BAD_REQUEST',
  host_not_allowed: 'BAD_REQUEST',
  private_address: 'BAD_REQUEST',
  bad_redirect: 'BAD_REQUEST',
  unreachable: 'BAD_REQUEST',
  http_status: 'BAD_REQUEST',
  timeout: 'BAD_REQUEST',
  too_large: 'BAD_REQUEST',
  not_an_image: 'BAD_REQUEST',
  too_many_pixels: 'BAD_REQUEST',
  unreadable_image: 'BAD_REQUEST',
};

/** A refused image source as the API answers it, with the input field it is about. */
export const sourceRefused = (error: SourceError, field: string) =>
  new DomainError(SOURCE_REFUSALS[error.reason], `${field}: ${error.message}`, { [field]: [error.message] }, { cause: error });

/** The domain error a failure stands for: itself, "database unavailable" for a lost database, or undefined (a bug). */
export function asDomainError(error: unknown): DomainError | undefined {
  if (error instanceof DomainError) return error;
  return isDatabaseUnavailable(error) ? databaseUnavailable(error) : undefined;
}
