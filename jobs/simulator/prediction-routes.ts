import type { ServerResponse } from 'node:http';
import { readCreateRequest, type CreateRequest, type CreateRoute } from './create-request.ts';
import { MAX_PREFER_WAIT_SECONDS, parseCancelAfter, parsePreferWait } from './durations.ts';
import { clientGone, headerValue, isPlainObject, sendJson } from './http.ts';
import { parseJsonBody } from './request-body.ts';
import { findModel, findModelByVersionRef, findModelForDeployment, latest, type ModelVersion } from './models.ts';
import { badRequest, NOT_FOUND, sendProblem, type Problem } from './problems.ts';
import { param, type ApiRequest, type Handler } from './routes.ts';
import { validateInput, type InvalidField } from './validation.ts';

// Predictions: create (by model, by version, through a deployment), get, cancel, list.

function sendInvalid(res: ServerResponse, fields: InvalidField[]): void {
  sendProblem(res, {
    title: 'Input validation failed',
    detail: fields.map((f) => `- ${f.field}: ${f.description}`).join('\n'),
    status: 422,
    invalid_fields: fields,
  });
}

const INVALID_VERSION: Problem = {
  title: 'Invalid version or not permitted',
  detail: "The specified version does not exist (or perhaps you don't have permission to use it?)",
  status: 422,
};

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

interface CreateTarget {
  readonly route: CreateRoute;
  readonly pickModel: (request: CreateRequest) => ModelVersion | undefined;
  readonly deployment: string | null;
}

async function createPrediction({ ctx, req, res, body }: ApiRequest, target: CreateTarget): Promise<void> {
  const parsedBody = parseJsonBody(await body());
  if (!parsedBody.ok) return sendProblem(res, parsedBody.problem);
  if (!isPlainObject(parsedBody.value)) return sendProblem(res, badRequest('Invalid request body', 'The request body must be a JSON object.'));
  const parsed = readCreateRequest(parsedBody.value, target.route);
  if (!parsed.ok) return sendInvalid(res, parsed.invalidFields);
  const { input, webhook, webhookEvents } = parsed.request;
  const model = target.pickModel(parsed.request);
  if (model === undefined) return sendProblem(res, INVALID_VERSION);
  const validation = validateInput(model.model, input, ctx.options.imageSize);
  if (!validation.ok) return sendInvalid(res, validation.invalidFields);

  const cancelAfter = readCancelAfter(headerValue(req, 'cancel-after'), ctx.options.minCancelAfterMs);
  if (!cancelAfter.ok) return sendProblem(res, cancelAfter.problem);
  const wait = parsePreferWait(headerValue(req, 'prefer'));
  if (wait.kind === 'invalid') {
    return sendProblem(res, badRequest('Invalid Prefer header', `Prefer: wait=n needs n between 1 and ${MAX_PREFER_WAIT_SECONDS} seconds; got "${wait.preference}".`));
  }

  const record = ctx.engine.create({ model, deployment: target.deployment, input, params: validation.params, webhook, webhookEvents, cancelAfterMs: cancelAfter.ms });
  ctx.stats.countCreate(webhook);

  if (wait.kind === 'none') return sendJson(res, 201, ctx.engine.toJson(record));
  await ctx.engine.waitUntilFinal(record, wait.seconds * 1000, clientGone(res));
  // Finished or not, a sync answer is a 201 that says which preference it honoured.
  sendJson(res, 201, ctx.engine.toJson(record), { 'preference-applied': wait.applied });
}

export const createByModel: Handler = (request) => {
  const model = findModel(param(request, 0), param(request, 1));
  if (model === undefined) return sendProblem(request.res, NOT_FOUND);
  return createPrediction(request, { route: 'model', pickModel: () => latest(model), deployment: null });
};

export const createByDeployment: Handler = (request) => {
  const [owner, name] = [param(request, 0), param(request, 1)];
  const model = findModelForDeployment(owner, name, request.ctx.options.deployments);
  if (model === undefined) return sendProblem(request.res, NOT_FOUND);
  return createPrediction(request, { route: 'model', pickModel: () => model, deployment: `${owner}/${name}` });
};

export const createByVersion: Handler = (request) =>
  createPrediction(request, { route: 'version', pickModel: (create) => findModelByVersionRef(create.version ?? ''), deployment: null });

export const getPrediction: Handler = ({ ctx, res, params }) => {
  const record = ctx.engine.get(params[0] ?? '');
  if (record === undefined) sendProblem(res, NOT_FOUND);
  else sendJson(res, 200, ctx.engine.toJson(record));
};

export const cancelPrediction: Handler = ({ ctx, req, res, params }) => {
  req.resume();
  const record = ctx.engine.cancel(params[0] ?? '');
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

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** created_after / created_before: ISO 8601 date-times (a date alone means its midnight, UTC). */
function readTimeParameter(url: URL, name: string): { ok: true; ms: number | null } | { ok: false; problem: Problem } {
  const value = url.searchParams.get(name);
  if (value === null) return { ok: true, ms: null };
  const ms = ISO_8601.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) return { ok: false, problem: badRequest('Invalid query parameter', `${name} must be an ISO 8601 date-time such as 2025-01-01T00:00:00Z; got "${value}".`) };
  return { ok: true, ms };
}

const TIME_FILTERS = ['created_after', 'created_before'] as const;

export const listPredictions: Handler = ({ ctx, res, url }) => {
  const cursor = url.searchParams.get('cursor');
  const before = cursor === null ? null : decodeCursor(cursor);
  if (cursor !== null && before === null) return sendProblem(res, badRequest('Invalid cursor', 'The cursor query parameter is not one this API gave out.'));
  const createdAfter = readTimeParameter(url, 'created_after');
  if (!createdAfter.ok) return sendProblem(res, createdAfter.problem);
  const createdBefore = readTimeParameter(url, 'created_before');
  if (!createdBefore.ok) return sendProblem(res, createdBefore.problem);
  const { page, nextSeq } = ctx.engine.list(before, ctx.options.listPageSize, { createdAfter: createdAfter.ms, createdBefore: createdBefore.ms });
  let next: string | null = null;
  if (nextSeq !== null) {
    // The next page keeps the filters.
    const nextUrl = new URL(`${ctx.baseUrl()}/v1/predictions`);
    for (const name of TIME_FILTERS) {
      const value = url.searchParams.get(name);
      if (value !== null) nextUrl.searchParams.set(name, value);
    }
    nextUrl.searchParams.set('cursor', encodeCursor(nextSeq));
    next = nextUrl.toString();
  }
  sendJson(res, 200, { next, previous: null, results: page.map((record) => ctx.engine.toJson(record)) });
};
