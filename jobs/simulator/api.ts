import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getAccount, getWebhookSecret } from './account-routes.ts';
import type { SimulatorContext } from './context.ts';
import { readRawBody, type RawBody } from './request-body.ts';
import { createFile, deleteFile, downloadFile, getFile, MULTIPART_OVERHEAD_BYTES } from './file-routes.ts';
import { getModel, getModelVersion } from './model-routes.ts';
import { cancelPrediction, createByDeployment, createByModel, createByVersion, getPrediction, listPredictions } from './prediction-routes.ts';
import { methodNotAllowed, NOT_FOUND, SERVER_ERRORS, sendProblem, sendThrottled, UNAUTHENTICATED } from './problems.ts';
import type { Budget, Method, Route } from './routes.ts';

// The /v1 surface: the part of Replicate's HTTP API the simulator models (README.md), with its
// status codes, error bodies and rate-limit headers. Order per request: hang fault → 5xx fault →
// auth → route → 429 (fault or rate limit) → handler.

function tokensMatch(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function isAuthorized(ctx: SimulatorContext, req: IncomingMessage): boolean {
  const match = /^(?:Bearer|Token)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1] !== undefined && tokensMatch(match[1], ctx.apiToken);
}

const ROUTES: readonly Route[] = [
  { pattern: /^\/v1\/predictions$/, methods: { GET: { budget: 'read', handler: listPredictions }, POST: { budget: 'create', handler: createByVersion } } },
  { pattern: /^\/v1\/predictions\/([a-z0-9]+)$/, methods: { GET: { budget: 'read', handler: getPrediction } } },
  { pattern: /^\/v1\/predictions\/([a-z0-9]+)\/cancel$/, methods: { POST: { budget: 'read', handler: cancelPrediction } } },
  { pattern: /^\/v1\/models\/([\w.-]+)\/([\w.-]+)\/predictions$/, methods: { POST: { budget: 'create', handler: createByModel } } },
  { pattern: /^\/v1\/deployments\/([\w.-]+)\/([\w.-]+)\/predictions$/, methods: { POST: { budget: 'create', handler: createByDeployment } } },
  { pattern: /^\/v1\/models\/([\w.-]+)\/([\w.-]+)$/, methods: { GET: { budget: 'read', handler: getModel } } },
  { pattern: /^\/v1\/models\/([\w.-]+)\/([\w.-]+)\/versions\/([0-9a-f]{64})$/, methods: { GET: { budget: 'read', handler: getModelVersion } } },
  { pattern: /^\/v1\/files$/, methods: { POST: { budget: 'read', handler: createFile, maxBodyBytes: (ctx) => ctx.options.maxFileBytes + MULTIPART_OVERHEAD_BYTES } } },
  { pattern: /^\/v1\/files\/([a-z0-9]+)$/, methods: { GET: { budget: 'read', handler: getFile }, DELETE: { budget: 'read', handler: deleteFile } } },
  { pattern: /^\/v1\/files\/([a-z0-9]+)\/download$/, methods: { GET: { budget: 'read', handler: downloadFile } } },
  { pattern: /^\/v1\/account$/, methods: { GET: { budget: 'read', handler: getAccount } } },
  { pattern: /^\/v1\/webhooks\/default\/secret$/, methods: { GET: { budget: 'read', handler: getWebhookSecret } } },
];

function findRoute(pathname: string): { route: Route; params: string[] } | undefined {
  for (const route of ROUTES) {
    const match = route.pattern.exec(pathname);
    if (match !== null) return { route, params: match.slice(1).map((p) => p ?? '') };
  }
  return undefined;
}

function isMethod(method: string): method is Method {
  return method === 'GET' || method === 'POST' || method === 'DELETE';
}

export async function handleApi(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  const found = findRoute(url.pathname);
  const endpoint = found !== undefined && isMethod(method) ? found.route.methods[method] : undefined;
  let bodyRead: Promise<RawBody> | undefined;
  const body = (): Promise<RawBody> => (bodyRead ??= readRawBody(req, endpoint?.maxBodyBytes?.(ctx) ?? ctx.options.maxBodyBytes));
  const hangMs = ctx.faults.takeHang();
  if (hangMs !== null) {
    // Like a slow gateway: the request (body included) has arrived and is still handled after
    // the delay, even if the client gave up meanwhile — so a timed-out create may still create
    // a prediction, as in production.
    if (method === 'POST') await body();
    await ctx.timers.sleep(hangMs);
    if (ctx.timers.stopped) return;
  }

  const injected = ctx.faults.take5xx();
  if (injected !== null) {
    ctx.stats.http5xx++;
    sendProblem(res, SERVER_ERRORS[injected]);
    return;
  }

  if (!isAuthorized(ctx, req)) {
    sendProblem(res, UNAUTHENTICATED, { 'www-authenticate': 'Bearer' });
    return;
  }

  const budget: Budget = endpoint?.budget ?? 'read';
  const bucket = budget === 'create' ? ctx.buckets.creates : ctx.buckets.reads;
  const resetSeconds = ctx.faults.takeThrottle(() => bucket.secondsUntilToken()) ?? (() => {
    const taken = bucket.tryTake();
    return taken.ok ? null : taken.resetSeconds;
  })();
  // Replicate's answers carry the draft-standard RateLimit headers of the budget the call drew on.
  res.setHeader('ratelimit-remaining', String(resetSeconds === null ? bucket.remaining() : 0));
  res.setHeader('ratelimit-reset', String(resetSeconds ?? bucket.secondsUntilFull()));
  if (resetSeconds !== null) {
    ctx.stats.throttled++;
    sendThrottled(res, resetSeconds, ctx.options.retryAfterHeader ? { 'retry-after': String(resetSeconds) } : {});
    return;
  }

  if (found === undefined) {
    ctx.stats.reads++;
    sendProblem(res, NOT_FOUND);
    return;
  }
  if (endpoint === undefined) {
    ctx.stats.reads++;
    sendProblem(res, methodNotAllowed(method), { allow: Object.keys(found.route.methods).join(', ') });
    return;
  }
  if (budget === 'read') ctx.stats.reads++;
  await endpoint.handler({ ctx, req, res, params: found.params, url, body });
}
