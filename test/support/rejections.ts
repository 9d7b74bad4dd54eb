// What a client sees when Kiln refuses a call: a tRPC error with a code, a message a person can
// act on, the invalid fields' paths, and never a stack trace.
import assert from 'node:assert/strict';
import { TRPCClientError } from '../../client-sdk/index.ts';

/** Awaits a call that must fail with `code` (and a message matching `message`); answers the error. */
export async function rejects(call: Promise<unknown>, code: string, message?: RegExp): Promise<TRPCClientError<never>> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof TRPCClientError, `a tRPC error, got ${String(error)}`);
    const data = error.data as { code?: string; stack?: unknown } | undefined;
    assert.equal(data?.code, code, `code for: ${error.message}`);
    if (message) assert.match(error.message, message);
    assert.equal(data?.stack, undefined, 'no stack trace reaches the client');
    return error as TRPCClientError<never>;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

/** The invalid fields of a refused call, by path (e.g. `items.3.subject`). */
export const fieldsOf = (error: TRPCClientError<never>): Record<string, string[]> =>
  (error.data as { fields?: Record<string, string[]> } | undefined)?.fields ?? {};

/** How long a refused call says to wait before trying again (TOO_MANY_REQUESTS, SERVICE_UNAVAILABLE). */
export const retryAfterOf = (error: TRPCClientError<never>): number | undefined =>
  (error.data as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
