// tRPC initialisation: the context (context.ts), the error shape clients see, and the procedures
// every router builds on. Domain errors become tRPC codes here and nowhere else.
import { TRPCError, initTRPC } from '@trpc/server';
import type { TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import { ZodError } from 'zod';
import { DomainError, asDomainError, unauthorized, type DomainErrorCode } from './errors.ts';
import { forbidden } from './errors.ts';
// Declared apart so that the router's type (which carries it) reaches no implementation.
import type { Context } from './context.ts';

const DOMAIN_TO_TRPC: Record<DomainErrorCode, TRPC_ERROR_CODE_KEY> = {
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
};

/** The tRPC error a failure stands for: a domain error's code, or the failure as tRPC would take it. */
function toTRPCError(error: unknown): unknown {
  const cause = asDomainError(error);
  return cause ? new TRPCError({ code: DOMAIN_TO_TRPC[cause.code], message: cause.message, cause }) : error;
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

export function createTRPC(options: { isDev: boolean }) {
  const t = initTRPC.context<Context>().create({
    isDev: options.isDev,
    errorFormatter({ shape: withStack, error }) {
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
      if (cause instanceof DomainError && cause.fields) {
        return { ...shape, data: { ...shape.data, fields: cause.fields } };
      }
      if (error.code === 'INTERNAL_SERVER_ERROR' && !options.isDev) {
        // Unexpected errors may carry database or file details: never show them to clients.
        return { ...shape, message: 'Internal server error; it has been logged' };
      }
      return shape;
    },
  });

  const domainErrors = t.middleware(async ({ next }) => {
    const result = await next();
    // A lost database surfaces as pg's own error wherever a query failed: it becomes "database
    // unavailable" here, so services need not know of it.
    if (!result.ok && asDomainError(result.error.cause)) throw toTRPCError(result.error.cause);
    return result;
  });

  const publicProcedure = t.procedure.use(domainErrors);

  /** Any valid credential: an API key or a scoped token (services check the token's scope). Verified on every call. */
  const authedProcedure = publicProcedure.use(async ({ ctx, next }) => {
    if (!ctx.hasCredentials) throw unauthorized('missing API key: send "Authorization: Bearer <key>"');
    const result = await ctx.authenticate();
    if (!result.ok) throw unauthorized(result.reason);
    return next({ ctx: { ...ctx, caller: result.caller, authenticated: result } });
  });

  /** An API key: scoped tokens may only read and subscribe. */
  const keyProcedure = authedProcedure.use(async ({ ctx, next }) => {
    if (ctx.caller.scope) throw forbidden('a scoped token may only read and subscribe; this call needs an API key');
    return next();
  });

  return { router: t.router, publicProcedure, authedProcedure, keyProcedure };
}
