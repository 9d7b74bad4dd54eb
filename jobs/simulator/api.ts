import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimulatorContext } from './context.ts';
import { MAX_PREFER_WAIT_SECONDS, parseCancelAfter, parsePreferWait } from './durations.ts';
import { clientGone, headerValue, isPlainObject, readJsonBody, sendJson, type BodyResult } from './http.ts';
import { badRequest, methodNotAllowed, NOT_FOUND, SERVER_ERRORS, sendProblem, sendThrottled, UNAUTHENTICATED, type Problem } from './problems.ts';
import { findModel, findModelByVersionRef, findModelForDeployment, latest, type ModelVersion } from './models.ts';
import { readCreateRequest, type CreateRequest, type CreateRoute } from './create-request.ts';
import { validateInput, type InvalidField } from './validation.ts';

// The /v1 surface: the subset of Replicate's HTTP API that Kiln uses, with its status codes and
// error bodies. Order per request: hang fault → 5xx fault → auth → route → 429 (fault or
// rate limit) → handler.

type Kind = 'create' | 'read';
/** The request body, read at most once (a hang fault reads it before stalling). */
type ReadBody = () => Promise<BodyResult>;
type Handler = (ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, params: string[], url: URL, body: ReadBody) => Promise<void> | void;

interface Route {
  readonly pattern: RegExp;
  readonly methods: Partial<Record<'GET' | 'POST', { kind: Kind; handler: Handler }>>;
}

function sendInvalid(res: ServerResponse, fields: InvalidField[]): void {
  sendProblem(res, {
    title: 'Input validation failed',
    detail: fields.map((f) => `- ${f.field}: ${f.description}`).join('\n'),
    status: 422,
    invalid_fields: fields,
  });
}

function tokensMatch(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function isAuthorized(ctx: SimulatorContext, req: IncomingMessage): boolean {
  const match = /^(?:Bearer|Token)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1] !== undefined && tokensMatch(match[1], ctx.apiToken);
}

// ---- create ----------------------------------------------------------------------------

/** The Cancel-After header: absent (null), a deadline in ms, or a 400. */
function readCancelAfter(header: string | undefined, minMs: number): { ok: true; ms: number | null } | { ok: false; problem: Problem } {
  if (header === undefined) return { ok: true, ms: null };
  const ms = parseCancelAfter(header);
  if (ms === null) {
    return { ok: false, problem: badRequest('Invalid Cancel-After header', `Cancel-After must be a duration such as "30s", "5m", "1h30m" or a number of seconds; got "${header}".`) };
  }
  if (ms < minMs) {
    return { ok: false, problem: badRequest('Invalid Cancel-After header', `Cancel-After must be at least ${minMs / 1000}s; got "${header}".`) };
  }
  return { ok: true, ms };
}

async function createPrediction(
  ctx: SimulatorContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: CreateRoute,
  pickModel: (request: CreateRequest) => ModelVersion | 'bad-version',
  readBody: ReadBody,
  deployment: string | null = null,
): Promise<void> {
  const body = await readBody();
  if (!body.ok) {
    sendProblem(res, body.problem);
    return;
  }
  if (!isPlainObject(body.value)) {
    sendProblem(res, badRequest('Invalid request body', 'The request body must be a JSON object.'));
    return;
  }
  const parsed = readCreateRequest(body.value, route);
  if (!parsed.ok) {
    sendInvalid(res, parsed.invalidFields);
    return;
  }
  const { input, webhook, webhookEvents } = parsed.request;
  const model = pickModel(parsed.request);
  if (model === 'bad-version') {
    sendProblem(res, {
      title: 'Invalid version or not permitted',
      detail: "The specified version does not exist (or perhaps you don't have permission to use it?)",
      status: 422,
    });
    return;
  }
  const validation = validateInput(model.model, input, ctx.options.imageSize);
  if (!validation.ok) {
    sendInvalid(res, validation.invalidFields);
    return;
  }

  const cancelAfter = readCancelAfter(headerValue(req, 'cancel-after'), ctx.options.minCancelAfterMs);
  if (!cancelAfter.ok) {
    sendProblem(res, cancelAfter.problem);
    return;
  }
  const cancelAfterMs = cancelAfter.ms;
  const wait = parsePreferWait(headerValue(req, 'prefer'));
  if (wait.kind === 'invalid') {
    sendProblem(res, badRequest('Invalid Prefer header', `Prefer: wait=n needs n between 1 and ${MAX_PREFER_WAIT_SECONDS} seconds; got "${wait.preference}".`));
    return;
  }

  const record = ctx.engine.create({ model, deployment, input, params: validation.params, webhook, webhookEvents, cancelAfterMs });
  ctx.stats.countCreate(webhook);

  if (wait.kind === 'none') {
    sendJson(res, 201, ctx.engine.toJson(record));
    return;
  }
  await ctx.engine.waitUntilFinal(record, wait.seconds * 1000, clientGone(res));
  // Finished or not, a sync answer is a 201 that says which preference it honoured.
  sendJson(res, 201, ctx.engine.toJson(record), { 'preference-applied': wait.applied });
}

const createByModel: Handler = (ctx, req, res, [owner = '', name = ''], _url, readBody) => {
  const model = findModel(owner, name);
  if (model === undefined) {
    sendProblem(res, NOT_FOUND);
    return;
  }
  return createPrediction(ctx, req, res, 'model', () => latest(model), readBody);
};

const createByDeployment: Handler = (ctx, req, res, [owner = '', name = ''], _url, readBody) => {
  const model = findModelForDeployment(owner, name, ctx.options.deployments);
  if (model === undefined) {
    sendProblem(res, NOT_FOUND);
    return;
  }
  return createPrediction(ctx, req, res, 'model', () => model, readBody, `${owner}/${name}`);
};

const createByVersion: Handler = (ctx, req, res, _params, _url, readBody) =>
  createPrediction(ctx, req, res, 'version', (request) => findModelByVersionRef(request.version ?? '') ?? 'bad-version', readBody);

// ---- reads -----------------------------------------------------------------------------

const getPrediction: Handler = (ctx, _req, res, [id = '']) => {
  const record = ctx.engine.get(id);
  if (record === undefined) sendProblem(res, NOT_FOUND);
  else sendJson(res, 200, ctx.engine.toJson(record));
};

const cancelPrediction: Handler = (ctx, req, res, [id = '']) => {
  req.resume();
  const record = ctx.engine.cancel(id);
  if (record === undefined) sendProblem(res, NOT_FOUND);
  else sendJson(res, 200, ctx.engine.toJson(record));
};

function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): number | null {
  const match = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** created_after / created_before: ISO 8601 date-times (a date alone means its midnight, UTC). */
function readTimeParameter(url: URL, name: string): { ok: true; ms: number | null } | { ok: false; problem: Problem } {
  const value = url.searchParams.get(name);
  if (value === null) return { ok: true, ms: null };
  const ms = ISO_8601.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) return { ok: false, problem: badRequest('Invalid query parameter', `${name} must be an ISO 8601 date-time such as 2025-01-01T00:00:00Z; got "${value}".`) };
  return { ok: true, ms };
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

const listPredictions: Handler = (ctx, _req, res, _params, url) => {
  const cursor = url.searchParams.get('cursor');
  const before = cursor === null ? null : decodeCursor(cursor);
  if (cursor !== null && before === null) {
    sendProblem(res, badRequest('Invalid cursor', 'The cursor query parameter is not one this API gave out.'));
    return;
  }
  const createdAfter = readTimeParameter(url, 'created_after');
  if (!createdAfter.ok) return sendProblem(res, createdAfter.problem);
  const createdBefore = readTimeParameter(url, 'created_before');
  if (!createdBefore.ok) return sendProblem(res, createdBefore.problem);
  const { page, nextSeq } = ctx.engine.list(before, ctx.options.listPageSize, { createdAfter: createdAfter.ms, createdBefore: createdBefore.ms });
  // The next page keeps the filters.
  const next = new URL(`${ctx.baseUrl()}/v1/predictions`);
  for (const name of ['created_after', 'created_before']) {
    const value = url.searchParams.get(name);
    if (value !== null) next.searchParams.set(name, value);
  }
  if (nextSeq !== null) next.searchParams.set('cursor', encodeCursor(nextSeq));
  sendJson(res, 200, {
    next: nextSeq === null ? null : next.toString(),
    previous: null,
    results: page.map((record) => ctx.engine.toJson(record)),
  });
};

const getWebhookSecret: Handler = (ctx, _req, res) => {
  sendJson(res, 200, { key: ctx.webhookSecret });
};

const ROUTES: readonly Route[] = [
  { pattern: /^\/v1\/predictions$/, methods: { GET: { kind: 'read', handler: listPredictions }, POST: { kind: 'create', handler: createByVersion } } },
  { pattern: /^\/v1\/predictions\/([a-z0-9]+)$/, methods: { GET: { kind: 'read', handler: getPrediction } } },
  { pattern: /^\/v1\/predictions\/([a-z0-9]+)\/cancel$/, methods: { POST: { kind: 'read', handler: cancelPrediction } } },
  { pattern: /^\/v1\/models\/([\w.-]+)\/([\w.-]+)\/predictions$/, methods: { POST: { kind: 'create', handler: createByModel } } },
  { pattern: /^\/v1\/deployments\/([\w.-]+)\/([\w.-]+)\/predictions$/, methods: { POST: { kind: 'create', handler: createByDeployment } } },
  { pattern: /^\/v1\/webhooks\/default\/secret$/, methods: { GET: { kind: 'read', handler: getWebhookSecret } } },
];

export async function handleApi(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  let bodyRead: Promise<BodyResult> | undefined;
  const readBody: ReadBody = () => (bodyRead ??= readJsonBody(req, ctx.options.maxBodyBytes));
  const hangMs = ctx.faults.takeHang();
  if (hangMs !== null) {
    // Like a slow gateway: the request (body included) has arrived and is still handled after
    // the delay, even if the client gave up meanwhile — so a timed-out create may still create
    // a prediction, as in production.
    if (req.method === 'POST') await readBody();
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

  const method = req.method ?? 'GET';
  let route: Route | undefined;
  let params: string[] = [];
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(url.pathname);
    if (match !== null) {
      route = candidate;
      params = match.slice(1).map((p) => p ?? '');
      break;
    }
  }
  const entry = route === undefined ? undefined : method === 'GET' || method === 'POST' ? route.methods[method] : undefined;
  const kind: Kind = entry?.kind ?? 'read';

  const bucket = kind === 'create' ? ctx.buckets.creates : ctx.buckets.reads;
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

  if (route === undefined) {
    ctx.stats.reads++;
    sendProblem(res, NOT_FOUND);
    return;
  }
  if (entry === undefined) {
    ctx.stats.reads++;
    sendProblem(res, methodNotAllowed(method), { allow: Object.keys(route.methods).join(', ') });
    return;
  }
  if (kind === 'read') ctx.stats.reads++;
  await entry.handler(ctx, req, res, params, url, readBody);
}
