// The replicate client retries 429s, 5xx on GET and thrown network errors in a tight loop of
// its own (without real backoff, and even for the create POST). We hand it this fetch, which
// makes exactly one network attempt per client call: a retryable outcome is thrown as a typed
// error, and every repeat the client's loop makes rethrows it without touching the network.
// So our cockatiel policies, not the client's loop, decide what is retried and when.
import { TransientProviderError } from './errors.ts';

export type Fetch = typeof globalThis.fetch;

export interface OneShotFetchOptions {
  /** Extra headers the client has no option for (e.g. Replicate's Cancel-After). */
  extraHeaders?: Record<string, string>;
  baseFetch?: Fetch;
}

/** Connection failures that prove the request never reached the provider. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export function oneShotFetch(options: OneShotFetchOptions = {}): Fetch {
  const baseFetch = options.baseFetch ?? globalThis.fetch;
  let firstFailure: unknown;
  let used = false;
  return async (input, init) => {
    if (used) {
      throw firstFailure ?? new TransientProviderError('provider call repeated after it settled', { publicReason: 'internal retry refused', ambiguous: false });
    }
    used = true;
    const headers = new Headers(init?.headers);
    for (const [name, value] of Object.entries(options.extraHeaders ?? {})) headers.set(name, value);
    let response: Response;
    try {
      response = await baseFetch(input, { ...init, headers });
    } catch (cause) {
      // Our own timeout or the caller's abort: the policy around this call tells which.
      if (init?.signal?.aborted) throw (firstFailure = cause);
      const code = errorCode(cause);
      throw (firstFailure = new TransientProviderError(`network error calling the provider: ${describe(cause)}`, {
        publicReason: 'the provider could not be reached',
        ambiguous: !NOT_SENT_CODES.has(code ?? ''),
        cause,
      }));
    }
    if (response.status === 429 || response.status >= 500) {
      const body = await response.text().catch(() => '');
      const throttled = response.status === 429;
      throw (firstFailure = new TransientProviderError(`provider answered ${response.status}: ${body.slice(0, 300)}`, {
        publicReason: throttled ? 'the provider is rate-limiting requests' : `the provider answered ${response.status}`,
        // A 429 is a refusal: nothing was done. A 5xx may have come after the work was accepted.
        ambiguous: !throttled,
        status: response.status,
        retryAfterMs: retryAfterMs(response.headers.get('retry-after'), body),
      }));
    }
    return response;
  };
}

/**
 * Replicate documents no Retry-After header, but its 429 body says
 * "Your rate limit resets in ~30s." Honour either.
 */
export function retryAfterMs(header: string | null, body: string): number | undefined {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const match = /resets in ~?(\d+(?:\.\d+)?)\s*s/i.exec(body);
  return match?.[1] ? Number(match[1]) * 1000 : undefined;
}

function errorCode(error: unknown): string | undefined {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
