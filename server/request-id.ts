// The request id: the client's `x-request-id` when it is a sane token, otherwise one of ours.
// It is answered in the response's header, bound to the request's log lines, stored with the
// generations it queues (migration 0017), and so carried to every job line of theirs.
import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Letters, digits and the punctuation of UUIDs, ULIDs, base64 and trace ids; nothing that could break a log line. */
const SANE = /^[A-Za-z0-9._:/+=@-]+$/;

/** The incoming id if it is one value, within `maxLength`, of sane characters; else a new UUID. */
export function requestIdFrom(header: string | string[] | undefined, maxLength: number): string {
  const value = Array.isArray(header) ? undefined : header?.trim();
  return value && value.length <= maxLength && SANE.test(value) ? value : randomUUID();
}

export const newRequestId = (): string => randomUUID();
