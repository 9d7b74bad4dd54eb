// Request bodies read with a size cap, as JSON or raw bytes; what goes wrong is a problem
// document to answer with (see problems.ts).
import type { IncomingMessage } from 'node:http';
import type { Problem } from './problems.ts';

export type BodyResult = { ok: true; value: unknown } | { ok: false; problem: Problem };

const tooLarge = (maxBytes: number): { ok: false; problem: Problem } => ({
  ok: false,
  problem: { title: 'Payload too large', detail: `Request body is larger than ${maxBytes} bytes.`, status: 413 },
});

export type RawBody = { ok: true; bytes: Buffer } | { ok: false; problem: Problem };

/** Reads the whole body, up to maxBytes (413 beyond, answered without waiting for the rest). */
export async function readRawBody(req: IncomingMessage, maxBytes: number): Promise<RawBody> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    req.resume(); // discard; the 413 is answered without waiting for the upload
    return tooLarge(maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let oversized = false;
  try {
    for await (const chunk of req) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > maxBytes) oversized = true;
      else chunks.push(buffer);
    }
  } catch {
    return { ok: false, problem: { title: 'Bad request', detail: 'Request body could not be read.', status: 400 } };
  }
  if (oversized) return tooLarge(maxBytes);
  return { ok: true, bytes: Buffer.concat(chunks) };
}

/** Parses a raw body as JSON. An empty body reads as undefined. */
export function parseJsonBody(raw: RawBody): BodyResult {
  if (!raw.ok) return raw;
  const text = raw.bytes.toString('utf8');
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'parse error';
    return { ok: false, problem: { title: 'Invalid JSON', detail: `Invalid JSON in request body: ${reason}`, status: 400 } };
  }
}

/** Reads a JSON body up to maxBytes. An empty body reads as undefined. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  return parseJsonBody(await readRawBody(req, maxBytes));
}
