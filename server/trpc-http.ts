// What reaches tRPC over HTTP, and what is answered before it:
//
// - Subscriptions are served over WebSocket only. tRPC would also stream them over HTTP as
//   server-sent events, where the WebSocket's limits (subscriptions per connection, slow
//   consumers cut off) do not apply, and where even a refused call answers 200. Asked over HTTP,
//   a subscription answers 401 without a valid credential, as any call does, and 405
//   (METHOD_NOT_SUPPORTED) with one.
// - Uploads (multipart/form-data to an upload procedure) go to a tRPC handler of their own, whose
//   body limit is the image limit rather than the JSON one; tRPC parses the form from the body as
//   it streams and stops at the limit. A body declared over the limit is refused before it is
//   read (read and dropped first when it is only a little over, so the client gets its 413).
// - JSON bodies are read here, within the size limit (413 beyond). Bytes that are not valid
//   UTF-8 would be decoded as U+FFFD and stored as a silently changed prompt; here each becomes
//   the escape `\udfff`, a lone surrogate, which validation refuses with the field's path (and
//   which outside a string is invalid JSON, refused as such).
import http from 'node:http';
import { isUtf8 } from 'node:buffer';
import type { Logger } from '../jobs/logger.ts';
import type { AuthResult } from './context.ts';
import { asDomainError, missingApiKey, notServedHere, tooLarge, unauthorized, type DomainError } from './errors.ts';
import { readBody, sendJson } from './http-server.ts';
import { errorResponse } from './trpc.ts';

export interface TrpcHttpOptions {
  /** tRPC's HTTP handler, mounted at `basePath`. */
  handler: http.RequestListener;
  basePath: string;
  /** Whether this procedure path names a subscription. */
  isSubscription(path: string): boolean;
  /** The request's credential, verified; undefined when it carries none. */
  authenticate(req: http.IncomingMessage): Promise<AuthResult> | undefined;
  maxBodyBytes: number;
  /** Upload procedures (multipart/form-data input), their handler and its body limit. */
  uploads: {
    isUpload(path: string): boolean;
    handler: http.RequestListener;
    maxBodyBytes: number;
    /** A body declared over the limit by at most this much is read and dropped before the 413; larger, the connection is closed. */
    maxDrainBytes: number;
  };
  logger: Logger;
}

export function createTrpcHttpEntry(options: TrpcHttpOptions): http.RequestListener {
  const answer = (res: http.ServerResponse, error: DomainError, path?: string, close = false) => {
    const { status, body } = errorResponse(error, path);
    sendJson(res, status, body, { ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}), ...(close ? { close } : {}) });
  };

  async function upload(req: http.IncomingMessage, res: http.ServerResponse, path: string) {
    const { maxBodyBytes, maxDrainBytes } = options.uploads;
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (!(declared > maxBodyBytes)) return options.uploads.handler(req, res);
    const refusal = tooLarge(`upload of ${declared} bytes is over the ${maxBodyBytes}-byte limit; nothing was stored`);
    if (declared > maxBodyBytes + maxDrainBytes) return answer(res, refusal, path, true);
    await readBody(req, 0); // read and dropped, so the client is listening when the answer comes
    if (!req.complete) return;
    answer(res, refusal, path);
  }

  async function refuseSubscription(req: http.IncomingMessage, res: http.ServerResponse, path: string) {
    const check = options.authenticate(req);
    if (!check) return answer(res, missingApiKey(), path);
    let result: AuthResult;
    try {
      result = await check;
    } catch (error) {
      const known = asDomainError(error);
      if (!known) throw error;
      return answer(res, known, path);
    }
    if (!result.ok) return answer(res, unauthorized(result.reason), path);
    answer(res, notServedHere('subscriptions are served over WebSocket only: connect to /trpc with the key in the connection params (the client-sdk does)'), path);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://kiln');
    const paths = safelyDecoded(url.pathname.slice(options.basePath.length)).split(',');
    const subscription = paths.find((path) => options.isSubscription(path));
    if (subscription) return refuseSubscription(req, res, subscription);
    if (req.method === 'POST' && paths.length === 1 && isMultipart(req) && options.uploads.isUpload(paths[0]!)) return upload(req, res, paths[0]!);
    if (req.method !== 'POST' || !isJson(req)) return options.handler(req, res);
    const bytes = await readBody(req, options.maxBodyBytes);
    if (!bytes) {
      if (!req.complete) return; // the client gave up: nobody to answer
      return answer(res, tooLarge(`request body over ${options.maxBodyBytes} bytes`));
    }
    // tRPC takes a body that was read already from `req.body`.
    Object.assign(req, { body: isUtf8(bytes) ? bytes.toString('utf8') : markInvalidUtf8(bytes) });
    options.handler(req, res);
  }

  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      options.logger.error('request failed', { error: error instanceof Error ? error.message : String(error), stack: error instanceof Error ? error.stack : undefined });
      if (!res.headersSent) sendJson(res, 500, { error: { message: 'Internal server error; it has been logged' } });
    });
  };
}

/** A malformed escape names no procedure: left as it is, tRPC answers it NOT_FOUND. */
const safelyDecoded = (path: string) => {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
};

const mediaType = (req: http.IncomingMessage) => req.headers['content-type']?.split(';', 1)[0]?.trim().toLowerCase();
const isJson = (req: http.IncomingMessage) => mediaType(req) === 'application/json';
const isMultipart = (req: http.IncomingMessage) => mediaType(req) === 'multipart/form-data';

/** The bytes as text, each byte that is not part of a valid UTF-8 sequence written as the escape `\udfff`. */
export function markInvalidUtf8(bytes: Buffer): string {
  const parts: string[] = [];
  let runStart = 0;
  let index = 0;
  while (index < bytes.length) {
    const length = sequenceLength(bytes, index);
    if (length > 0) {
      index += length;
      continue;
    }
    parts.push(bytes.toString('utf8', runStart, index));
    // After an odd number of backslashes the escape's own backslash is already there.
    let backslashes = 0;
    while (index - backslashes - 1 >= runStart && bytes[index - backslashes - 1] === 0x5c) backslashes += 1;
    parts.push(backslashes % 2 === 1 ? 'udfff' : '\\udfff');
    index += 1;
    runStart = index;
  }
  parts.push(bytes.toString('utf8', runStart));
  return parts.join('');
}

/** Length of the valid UTF-8 sequence at `index` (RFC 3629: no overlongs, surrogates or values past U+10FFFF), or 0. */
function sequenceLength(bytes: Buffer, index: number): number {
  const at = (offset: number) => bytes[index + offset] ?? -1;
  const continues = (offset: number) => (at(offset) & 0xc0) === 0x80 && at(offset) >= 0;
  const first = at(0);
  if (first < 0x80) return 1;
  if (first >= 0xc2 && first <= 0xdf) return continues(1) ? 2 : 0;
  if (first >= 0xe0 && first <= 0xef) {
    const [low, high] = first === 0xe0 ? [0xa0, 0xbf] : first === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return at(1) >= low && at(1) <= high && continues(2) ? 3 : 0;
  }
  if (first >= 0xf0 && first <= 0xf4) {
    const [low, high] = first === 0xf0 ? [0x90, 0xbf] : first === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return at(1) >= low && at(1) <= high && continues(2) && continues(3) ? 4 : 0;
  }
  return 0;
}
