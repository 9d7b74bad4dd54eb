// Why an image source was refused, as a value: the guard and the image check throw these, and
// the API maps each reason to a tRPC code in one place (server/errors.ts). Messages are meant
// for the caller: they say what to change, and never what Kiln's network looks like inside.

export const SOURCE_ERROR_REASONS = [
  /** Not an absolute http(s) URL, or one with credentials in it. */
  'invalid_url',
  /** The host (or a redirect's) is not among the tenant's allowed source hosts. */
  'host_not_allowed',
  /** The host resolves to (or is) a private, loopback, link-local or otherwise non-public address. */
  'private_address',
  /** More redirects than allowed, a redirect without a usable Location, or from https to http. */
  'bad_redirect',
  /** The server could not be reached, or broke off. */
  'unreachable',
  /** The server answered with a status other than 2xx. */
  'http_status',
  /** Headers or the whole body did not arrive in time. */
  'timeout',
  /** More bytes than the source limit. */
  'too_large',
  /** Not a PNG, JPEG, WebP or AVIF image (told from its bytes). */
  'not_an_image',
  /** More pixels than the limit. */
  'too_many_pixels',
  /** Looks like an image but cannot be read. */
  'unreadable_image',
] as const;
export type SourceErrorReason = (typeof SOURCE_ERROR_REASONS)[number];

export class SourceError extends Error {
  override name = 'SourceError';
  readonly reason: SourceErrorReason;
  constructor(reason: SourceErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

export const isSourceError = (error: unknown): error is SourceError => error instanceof SourceError;
