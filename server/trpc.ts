// tRPC initialisation: the context (context.ts), the error shape clients see, and the procedures
// every router builds on. Domain errors become tRPC codes here and nowhere else.
import { TRPCError, getTRPCErrorFromUnknown, initTRPC } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { TRPC_ERROR_CODES_BY_KEY, type TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import { ZodError } from 'zod';
import { DomainError, asDomainError, forbidden, missingApiKey, unauthorized, type DomainErrorCode } from './errors.ts';
// Declared apart so that the router's type (which carries it) reaches no implementation.
import type { Authenticated, CallObserver, CallRecord, Context } from './context.ts';

const DOMAIN_TO_TRPC: Record<DomainErrorCode, TRPC_ERROR_CODE_KEY> = {
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  PAYMENT_REQUIRED: 'PAYMENT_REQUIRED',
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  METHOD_NOT_SUPPORTED: 'METHOD_NOT_SUPPORTED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
};

/** The tRPC error a failure stands for: a domain error's code, or the failure as tRPC would take it. */
function toTRPCError(error: unknown): unknown {
  const cause = asDomainError(error);
  return cause ? new TRPCError({ code: DOMAIN_TO_TRPC[cause.code], message: cause.message, cause }) : error;
}

/**
 * A domain error answered outside a procedure (HTTP guards in front of tRPC), in the shape tRPC
 * gives its own errors, with the HTTP status that goes with its code.
 */
export function errorResponse(error: DomainError, path: string | undefined): { status: number; body: unknown } {
  const trpcError = new TRPCError({ code: DOMAIN_TO_TRPC[error.code], message: error.message, cause: error });
  const status = getHTTPStatusCodeFromError(trpcError);
  const data = { code: trpcError.code, httpStatus: status, ...(path ? { path } : {}), ...(error.fields ? { fields: error.fields } : {}) };
  return { status, body: { error: { message: error.message, code: TRPC_ERROR_CODES_BY_KEY[trpcError.code], data } } };
}

/**
 * A subscription's stream: the domain errors it ends with reach the client with their codes,
 * as a call's do, and `onEnd` runs however it ends.
 */
export async function* subscriptionStream<T>(source: AsyncIterable<T>, onEnd: () => void): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (error) {
    throw toTRPCError(error);
  } finally {
    onEnd();
  }
}

/** `{ 'items.0.prompt': ['prompt must not be empty'] }` — paths a form can point at. */
function fieldErrors(error: ZodError): Record<string, string[]> {
  const fields: Record<string, string[]> = {};
  for (const issue of error.issues) {
    const path = issue.path.map(String).join('.') || '(input)';
    (fields[path] ??= []).push(issue.message);
  }
  return fields;
}

/**
 * Procedures whose input is multipart/form-data rather than JSON: the HTTP entry gives their
 * bodies the image size limit instead of the JSON one (trpc-http.ts).
 */
export const UPLOAD_PROCEDURES: ReadonlySet<string> = new Set(['sources.upload']);

export interface TRPCOptions {
  isDev: boolean;
  /** An upload's body limit, named when tRPC cuts one off as it streams. */
  maxUploadBodyBytes: number;
  /** Calls one HTTP request, and messages one WebSocket frame, may carry: named in the error that says so. */
  maxCallsPerHttpRequest: number;
  maxMessagesPerFrame: number;
  /** Told of every call once it is answered: its procedure, type, transport, final code ('OK' or tRPC's) and time. */
  onCall?: (call: { procedure: string; type: string; transport: 'http' | 'ws'; code: string; seconds: number }) => void;
  /** Each call's log line and span (call-telemetry.ts). */
  observeCall: CallObserver;
}

export function createTRPC(options: TRPCOptions) {
  const t = initTRPC.context<Context>().create({
    isDev: options.isDev,
    // Subscriptions are served over WebSocket only (where their limits apply); the HTTP entry
    // refuses them before tRPC sees them, and this keeps tRPC from streaming one regardless.
    sse: { enabled: false },
    errorFormatter({ shape: withStack, error, path }) {
      // Stack traces never leave the server, in development either; the log has them.
      const shape = { ...withStack, data: { ...withStack.data, stack: undefined } };
      const cause = error.cause;
      if (cause instanceof ZodError) {
        const fields = fieldErrors(cause);
        const summary = Object.entries(fields)
          .map(([path, messages]) => `${path}: ${messages.join('; ')}`)
          .join(' · ');
        return { ...shape, message: `Invalid input — ${summary}`, data: { ...shape.data, fields } };
      }
      if (cause instanceof SyntaxError && error.code === 'BAD_REQUEST') {
        return { ...shape, message: `request body is not valid JSON: ${cause.message}` };
      }
      if (cause instanceof DomainError && (cause.fields || cause.retryAfterSeconds !== undefined)) {
        const extra = { ...(cause.fields ? { fields: cause.fields } : {}), ...(cause.retryAfterSeconds !== undefined ? { retryAfterSeconds: cause.retryAfterSeconds } : {}) };
        return { ...shape, data: { ...shape.data, ...extra } };
      }
      if (error.code === 'BAD_REQUEST' && error.message === 'Batch call exceeds maximum size') {
        // tRPC's own words for both limits; say which numbers apply.
        return {
          ...shape,
          message: `too many calls at once: at most ${options.maxCallsPerHttpRequest} in one HTTP request and ${options.maxMessagesPerFrame} in one WebSocket frame`,
        };
      }
      if (error.code === 'PAYLOAD_TOO_LARGE' && !(cause instanceof DomainError)) {
        // tRPC's own words are the bare code: say which limit it was.
        const upload = path !== undefined && UPLOAD_PROCEDURES.has(path);
        return { ...shape, message: upload ? `upload over the ${options.maxUploadBodyBytes}-byte limit; nothing was stored` : 'request body too large' };
      }
      if (error.code === 'INTERNAL_SERVER_ERROR' && !options.isDev) {
        // Unexpected errors may carry database or file details: never show them to clients.
        return { ...shape, message: 'Internal server error; it has been logged' };
      }
      return shape;
    },
  });

  /**
   * The one middleware of every procedure: it observes the call (its line, span and metrics see
   * the code the client gets), checks who may call, and answers domain errors with their codes.
   * One step rather than a chain, as tRPC copies its options and context at every step, on
   * every call.
   */
  const procedureFor = <Added extends object>(admit: (ctx: Context, call: CallRecord) => Promise<Added>) =>
    t.procedure.use(async ({ ctx, path, type, next, getRawInput }) => {
      const startedAt = performance.now();
      const call = options.observeCall({ path, type, request: ctx.request, overWebSocket: ctx.connection !== undefined });
      const observe = (result: { ok: true; output: unknown } | { ok: false; error: TRPCError }) => {
        options.onCall?.({ procedure: path, type, transport: ctx.connection ? 'ws' : 'http', code: result.ok ? 'OK' : result.error.code, seconds: (performance.now() - startedAt) / 1000 });
        return call.end(result, getRawInput);
      };
      let answered;
      try {
        const added = await admit(ctx, call.record);
        answered = withDomainCodes(await next({ ctx: { call: call.record, ...added } }));
      } catch (thrown) {
        const error = getTRPCErrorFromUnknown(toTRPCError(thrown));
        await observe({ ok: false, error });
        throw error;
      }
      await observe(answered.ok ? { ok: true, output: answered.data } : { ok: false, error: answered.error });
      return answered;
    });

  const tenantProcedure = (access: 'credential' | 'key') =>
    procedureFor(async (ctx, call) => {
      const authenticated = await admitTenant(ctx, access);
      call.tenantId = authenticated.caller.tenantId;
      return { caller: authenticated.caller, authenticated };
    });

  return {
    router: t.router,
    /** Any valid credential: an API key or a scoped token (services check the token's scope). Verified on every call. */
    authedProcedure: tenantProcedure('credential'),
    /** An API key: scoped tokens may only read and subscribe. */
    keyProcedure: tenantProcedure('key'),
    /** The operator's admin token (KILN_ADMIN_TOKEN): managing every tenant's keys. API keys and tokens may not. */
    operatorProcedure: procedureFor(async (ctx) => {
      await admitOperator(ctx);
      return {};
    }),
  };
}

/**
 * A procedure's result, its domain error answered with its code. A lost database surfaces as
 * pg's own error wherever a query failed: it becomes "database unavailable" here, so services
 * need not know of it.
 */
function withDomainCodes<T extends { ok: true } | { ok: false; error: TRPCError }>(result: T): T {
  const cause = result.ok ? undefined : result.error.cause;
  if (cause && asDomainError(cause)) throw toTRPCError(cause);
  return result;
}

/** A tenant's caller, verified: any valid credential, or (`key`) an API key only. */
async function admitTenant(ctx: Context, access: 'credential' | 'key'): Promise<Authenticated> {
  if (!ctx.hasCredentials) throw missingApiKey();
  if (ctx.isOperator) throw forbidden('the admin token is for admin procedures only; calls for a tenant need its API key');
  const result = await ctx.authenticate();
  if (!result.ok) throw unauthorized(result.reason);
  if (access === 'key' && result.caller.scope) throw forbidden('a scoped token may only read and subscribe; this call needs an API key');
  return result;
}

/** The operator's admin token, or the refusal that says what was sent instead. */
async function admitOperator(ctx: Context): Promise<void> {
  if (!ctx.hasCredentials) throw unauthorized('missing admin token: send "Authorization: Bearer <KILN_ADMIN_TOKEN>"');
  if (ctx.isOperator) return;
  const off = ctx.adminEnabled ? '' : ' (admin procedures are off on this server: KILN_ADMIN_TOKEN is not set)';
  const result = await ctx.authenticate();
  if (!result.ok) throw unauthorized(`not the admin token, nor a valid API key${off}`);
  throw forbidden(`admin procedures need the operator's admin token, not a tenant's key or token${off}`);
}
