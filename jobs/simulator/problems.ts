import type { ServerResponse } from 'node:http';
import { sendJson } from './http.ts';

// Error answers, as Replicate gives them: RFC 9457 problem documents (`application/problem+json`)
// with `title`, `detail` and `status`. The 401 and 429 bodies are copied from recorded Replicate
// answers; the other titles follow the same style.

export interface Problem {
  readonly title: string;
  readonly detail: string;
  readonly status: number;
  /** Extra members, e.g. `invalid_fields` on a 422. */
  readonly [member: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function sendProblem(res: ServerResponse, problem: Problem, headers: Record<string, string> = {}): void {
  sendJson(res, problem.status, problem, { 'content-type': PROBLEM_CONTENT_TYPE, ...headers });
}

export const NOT_FOUND: Problem = { title: 'Not found', detail: 'The requested resource could not be found.', status: 404 };

export const UNAUTHENTICATED: Problem = { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 };

export function badRequest(title: string, detail: string): Problem {
  return { title, detail, status: 400 };
}

export function payloadTooLarge(detail: string): Problem {
  return { title: 'Payload too large', detail, status: 413 };
}

export function methodNotAllowed(method: string): Problem {
  return { title: 'Method not allowed', detail: `Method "${method}" not allowed.`, status: 405 };
}

export const SERVER_ERRORS: Readonly<Record<500 | 502 | 503, Problem>> = {
  500: { title: 'Internal Server Error', detail: 'An unexpected error occurred. Please try again.', status: 500 },
  502: { title: 'Bad Gateway', detail: 'The server received an invalid response from an upstream server.', status: 502 },
  503: { title: 'Service Unavailable', detail: 'The service is temporarily unavailable. Please try again later.', status: 503 },
};

export function internalError(detail: string): Problem {
  return { title: 'Internal Server Error', detail, status: 500 };
}

/**
 * Replicate's 429 body is exactly `{"detail":"Request was throttled. Your rate limit resets in ~Ns."}`
 * (no title, no status member); Kiln and other clients read the seconds out of it.
 */
export function sendThrottled(res: ServerResponse, seconds: number, headers: Record<string, string> = {}): void {
  sendJson(res, 429, { detail: `Request was throttled. Your rate limit resets in ~${seconds}s.` }, { 'content-type': PROBLEM_CONTENT_TYPE, ...headers });
}
