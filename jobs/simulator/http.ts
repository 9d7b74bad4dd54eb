import type { IncomingMessage, ServerResponse } from 'node:http';

// Small HTTP helpers. Writes check the socket first: a client that gave up (timeout, hang
// fault) must never make the server throw.

export function canWrite(res: ServerResponse): boolean {
  return !res.writableEnded && !res.destroyed;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (!canWrite(res)) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function sendBytes(res: ServerResponse, status: number, bytes: Buffer, headers: Record<string, string>, headOnly: boolean): void {
  if (!canWrite(res)) return;
  res.writeHead(status, { 'content-length': String(bytes.length), ...headers });
  res.end(headOnly ? undefined : bytes);
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  if (!canWrite(res)) return;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(html)) });
  res.end(html);
}

/** One request header as a string (Node joins repeats of unknown headers with ", "). */
export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An AbortSignal that fires when the client goes away before the response is sent. */
export function clientGone(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
