import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimulatorContext } from './context.ts';
import { canWrite, sendBytes, sendHtml } from './http.ts';
import { methodNotAllowed, NOT_FOUND, sendProblem } from './problems.ts';
import { isFinal } from './stats.ts';
import { contentTypeOfFile } from '../render/presets.ts';
import { readOutputFile } from './own-files.ts';

// Routes outside /v1 that Replicate serves from other hosts: output files (replicate.delivery),
// the SSE stream (stream.replicate.com) and the web page (replicate.com/p/…). No auth and no
// rate limit, like the real file CDN.

const FILE_PATH = /^\/files\/([a-z0-9]+)\/([\w.-]+)$/;
const STREAM_PATH = /^\/stream\/([a-z0-9]+)$/;
const PAGE_PATH = /^\/p\/([a-z0-9]+)$/;

export function isPublicPath(pathname: string): boolean {
  return FILE_PATH.test(pathname) || STREAM_PATH.test(pathname) || PAGE_PATH.test(pathname);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function serveFile(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, id: string, name: string): Promise<void> {
  const file = await readOutputFile(ctx, id, name);
  if (file.kind !== 'file') {
    sendProblem(res, file.kind === 'removed' ? { ...NOT_FOUND, detail: 'This file has been deleted.' } : NOT_FOUND);
    return;
  }
  sendBytes(
    res,
    200,
    file.bytes,
    { 'content-type': contentTypeOfFile(`out.${file.format}`) ?? 'application/octet-stream', 'cache-control': 'public, max-age=3600, immutable' },
    req.method === 'HEAD',
  );
}

/**
 * Server-sent events, as Replicate's `urls.stream`: `logs` events as lines are written (those
 * written before the client connected first), an `output` event per output URL, and at the end
 * `done` with `{}` — or, for a failed run, `error` with `{"detail": …}` then `done` with
 * `{"reason": "error"}`, and for a canceled or aborted one `done` with `{"reason": "canceled"}`.
 */
function serveStream(ctx: SimulatorContext, res: ServerResponse, id: string): void {
  const record = ctx.engine.get(id);
  if (record === undefined) {
    sendProblem(res, NOT_FOUND);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.flushHeaders();
  const events = new EventWriter(res, Math.floor(record.createdAt / 1000));
  for (const line of ctx.engine.logLinesSoFar(record)) events.send('logs', line);
  const unsubscribe = ctx.engine.subscribe(record, {
    onLogs: (lines) => {
      for (const line of lines) events.send('logs', line);
    },
    onFinal: () => {
      // Not over, so the simulator is stopping: just hang up, as a dropped connection would.
      if (!isFinal(record.status)) return void res.end();
      const json = ctx.engine.toJson(record);
      const outputs = json.output === null ? [] : Array.isArray(json.output) ? json.output : [json.output];
      for (const output of outputs) events.send('output', output);
      if (json.status === 'failed') events.send('error', JSON.stringify({ detail: json.error }));
      const reason = json.status === 'failed' ? { reason: 'error' } : json.status === 'succeeded' ? {} : { reason: 'canceled' };
      events.send('done', JSON.stringify(reason));
      res.end();
    },
  });
  res.once('close', unsubscribe);
}

/** Writes SSE events with Replicate-style ids ("<unix seconds>:<n>"); clients such as the Python one need an id on every event. */
class EventWriter {
  readonly #res: ServerResponse;
  readonly #idPrefix: number;
  #count = 0;

  constructor(res: ServerResponse, idPrefix: number) {
    this.#res = res;
    this.#idPrefix = idPrefix;
  }

  send(event: string, data: string): void {
    if (!canWrite(this.#res)) return;
    const dataLines = data.split('\n').map((line) => `data: ${line}`).join('\n');
    this.#res.write(`event: ${event}\nid: ${this.#idPrefix}:${this.#count++}\n${dataLines}\n\n`);
  }
}

function servePage(ctx: SimulatorContext, res: ServerResponse, id: string): void {
  const record = ctx.engine.get(id);
  if (record === undefined) {
    sendHtml(res, 404, '<!doctype html><title>Not found</title><p>Prediction not found.</p>');
    return;
  }
  const json = ctx.engine.toJson(record);
  const outputs = json.output === null ? [] : Array.isArray(json.output) ? json.output : [json.output];
  const images = outputs.map((u) => `<img src="${escapeHtml(u)}" style="max-width:45%;margin:4px">`).join('');
  const refresh = json.completed_at === null ? '<meta http-equiv="refresh" content="1">' : '';
  sendHtml(
    res,
    200,
    `<!doctype html><meta charset="utf-8">${refresh}<title>${escapeHtml(json.id)}</title>` +
      `<h1>${escapeHtml(json.model)} — ${escapeHtml(json.status)}</h1>` +
      `<p>${escapeHtml(String(json.input.prompt ?? ''))}</p>${images}` +
      (json.error === null ? '' : `<p style="color:#b00">${escapeHtml(json.error)}</p>`) +
      `<pre>${escapeHtml(json.logs)}</pre>`,
  );
}

export async function handlePublic(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    sendProblem(res, methodNotAllowed(method), { allow: 'GET, HEAD' });
    return;
  }
  const file = FILE_PATH.exec(url.pathname);
  if (file !== null) return serveFile(ctx, req, res, file[1] ?? '', file[2] ?? '');
  const stream = STREAM_PATH.exec(url.pathname);
  if (stream !== null) return serveStream(ctx, res, stream[1] ?? '');
  const page = PAGE_PATH.exec(url.pathname);
  if (page !== null) return servePage(ctx, res, page[1] ?? '');
  sendProblem(res, NOT_FOUND);
}
