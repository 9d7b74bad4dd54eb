// Plain HTTP beside tRPC: /trpc/* (the API), /health, /ready, /metrics (ops-routes.ts),
// /assets/<key> (immutable images), /webhooks/replicate (the provider reporting back), and the
// Studio page at / (studio-route.ts).
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { STORAGE_KEY_PATTERN, type AssetStorage } from '../jobs/storage/storage.ts';
import type { Logger } from '../jobs/logger.ts';
import { contentTypeOfFile } from '../jobs/render/presets.ts';
import type { HttpRoute } from './metrics/kiln-metrics.ts';

export interface HttpServerOptions {
  trpc: http.RequestListener;
  webhooks: http.RequestListener;
  storage: AssetStorage;
  /** /health, /ready and /metrics: true when it answered the request. */
  ops: (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => boolean;
  /** The Studio page at `/` and its files under /studio/ (studio-route.ts): true when it answered. */
  studio?: (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => boolean;
  /** Told of every answered request: its route (never the raw path), status and time. */
  observe?: (route: HttpRoute, status: number, seconds: number) => void;
  logger: Logger;
  /** Sees every request first (its id and log line: request-log.ts). */
  onRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  timeouts: { headersTimeoutMs: number; requestTimeoutMs: number; idleSocketTimeoutMs: number; keepAliveTimeoutMs: number; timeoutCheckIntervalMs: number };
}

export function createHttpServer(options: HttpServerOptions): http.Server {
  const { timeouts } = options;
  const server = http.createServer({ connectionsCheckingInterval: timeouts.timeoutCheckIntervalMs }, (req, res) => {
    options.onRequest?.(req, res);
    const url = new URL(req.url ?? '/', 'http://kiln');
    if (options.observe) observeRequest(res, routeOf(url.pathname), options.observe);
    if (url.pathname.startsWith('/trpc/')) return options.trpc(req, res);
    if (url.pathname === '/webhooks/replicate') return options.webhooks(req, res);
    if (options.ops(req, res, url.pathname)) return;
    if (url.pathname.startsWith('/assets/')) return void serveAsset(req, res, url.pathname.slice('/assets/'.length));
    if (options.studio?.(req, res, url.pathname)) return;
    sendJson(res, 404, { error: 'not found' });
  });

  async function serveAsset(req: http.IncomingMessage, res: http.ServerResponse, key: string) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
    if (!STORAGE_KEY_PATTERN.test(key)) return sendJson(res, 404, { error: 'not found' });
    const object = await options.storage.open(key);
    if (!object) return sendJson(res, 404, { error: 'not found' });
    // Keys are content hashes: the same URL always names the same bytes.
    const etag = `"${key.slice(0, 64)}"`;
    const headers = {
      'Content-Type': contentTypeOfFile(key) ?? 'application/octet-stream',
      'Cache-Control': 'public, max-age=31536000, immutable',
      ETag: etag,
      'X-Content-Type-Options': 'nosniff',
    };
    if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === etag)) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': object.size });
    if (req.method === 'HEAD') return void res.end();
    await pipeline(object.stream(), res).catch((error: unknown) => {
      // A client that hangs up mid-download is normal; anything else is worth a line.
      if ((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
      options.logger.warn('asset stream failed', { key, error: error instanceof Error ? error.message : String(error) });
    });
  }

  // Requests hang on a dead or dawdling client forever otherwise: headers and the whole request
  // have deadlines (answered 408), and a socket silent both ways — a response nobody reads, a
  // client that vanished — is closed. WebSockets leave this socket timeout behind when they
  // upgrade (their heartbeat and idle limit take over).
  server.requestTimeout = timeouts.requestTimeoutMs;
  server.headersTimeout = timeouts.headersTimeoutMs;
  server.keepAliveTimeout = timeouts.keepAliveTimeoutMs;
  server.timeout = timeouts.idleSocketTimeoutMs;
  server.on('clientError', (_error: Error, socket: Duplex) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return server;
}

/** The route a path belongs to, as the metrics name it. */
export function routeOf(pathname: string): HttpRoute {
  if (pathname.startsWith('/trpc/')) return 'trpc';
  if (pathname.startsWith('/assets/')) return 'assets';
  if (pathname === '/webhooks/replicate') return 'webhooks';
  if (pathname === '/health' || pathname === '/ready' || pathname === '/metrics') return pathname.slice(1) as HttpRoute;
  if (pathname === '/' || pathname === '/index.html' || pathname.startsWith('/studio/')) return 'studio';
  return 'other';
}

/** Reports the request once its answer is sent (or the client went away first: then with the status as it stood). */
export function observeRequest(res: http.ServerResponse, route: HttpRoute, observe: (route: HttpRoute, status: number, seconds: number) => void): void {
  const startedAt = performance.now();
  res.once('close', () => observe(route, res.statusCode, (performance.now() - startedAt) / 1000));
}

/**
 * The body, or undefined when it is over the limit (or the client gave up): an oversized rest is
 * read to its end and dropped, so the reply reaches the client (the request timeout bounds it).
 */
export function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > maxBytes ? undefined : Buffer.concat(chunks)));
    // Aborted or broken off by the client (or its request timeout): nothing to answer, nothing to log.
    req.on('error', () => resolve(undefined));
    req.on('close', () => resolve(undefined));
  });
}

/** `close`: the request body was not read to its end, so the connection cannot be reused. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, options: { headOnly?: boolean; close?: boolean; retryAfterSeconds?: number; noStore?: boolean } = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...(options.noStore ? { 'Cache-Control': 'no-store' } : {}),
    ...(options.close ? { Connection: 'close' } : {}),
    ...(options.retryAfterSeconds !== undefined ? { 'Retry-After': String(options.retryAfterSeconds) } : {}),
  });
  res.end(options.headOnly ? undefined : text);
}
