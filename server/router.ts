// The API. Inputs are the zod schemas in schemas.ts; outputs are what the service contracts
// (services.ts) answer. The client-sdk imports `AppRouter` as a type only, and its declaration
// files reach only the light contract files the router's type names (context.ts, services.ts,
// api-types.ts), never an implementation.
import { batchIdInput, batchInput, createTokenInput, creditsInput, generateInput, idInput, listInput, onUpdateInput } from './schemas.ts';
import { createTRPC } from './trpc.ts';

export interface RouterOptions {
  isDev: boolean;
}

export function createAppRouter(options: RouterOptions) {
  const { router, authedProcedure, keyProcedure } = createTRPC(options);
  return router({
    /** Queue one prompt; answers at once with its id. */
    generate: keyProcedure.input(generateInput).mutation(({ ctx, input }) => ctx.services.generations.generate(ctx.caller, input)),
    /** Up to 1,000 prompts in one transaction. */
    batch: keyProcedure.input(batchInput).mutation(({ ctx, input }) => ctx.services.generations.batch(ctx.caller, input)),
    /** One generation with its assets and stage events. */
    status: authedProcedure.input(idInput).query(({ ctx, input }) => ctx.services.generations.status(ctx.caller, input.id)),
    /** Counts per state for a batch. */
    batchStatus: authedProcedure.input(batchIdInput).query(({ ctx, input }) => ctx.services.generations.batchStatus(ctx.caller, input.batchId)),
    /** The caller's generations, newest first, with cursor pagination. */
    list: keyProcedure.input(listInput).query(({ ctx, input }) => ctx.services.generations.list(ctx.caller, input)),
    /** Cancel queued or running work, at the provider too. */
    cancel: keyProcedure.input(idInput).mutation(({ ctx, input }) => ctx.services.generations.cancel(ctx.caller, input.id)),
    /** The model table: each model's price at the provider, and whether the caller's tier may use it. */
    models: keyProcedure.query(({ ctx }) => ctx.services.generations.models(ctx.caller)),
    /** The tenant's credit balance and its spend by model and day. */
    credits: keyProcedure.input(creditsInput).query(({ ctx, input }) => ctx.services.accounts.credits(ctx.caller, input)),
    /** Operations: the caller's generations per state, the provider budgets and breaker. */
    ops: router({
      stats: keyProcedure.query(({ ctx }) => ctx.services.ops.stats(ctx.caller)),
    }),
    /**
     * A short-lived token for a browser: read and subscribe only, to one generation or batch.
     * Mint it in your backend (with the API key) and give it to the frontend.
     */
    createToken: keyProcedure.input(createTokenInput).mutation(({ ctx, input }) => ctx.services.tokens.mint(ctx.caller, input)),
    /**
     * Every stage of the caller's generations as it happens (WebSocket): one generation, one
     * batch, or all. Each event is tracked by its id, so a reconnecting client resumes after
     * the last event it received and misses nothing.
     */
    onUpdate: authedProcedure.input(onUpdateInput).subscription(({ ctx, input, signal }) => {
      const socket = ctx.connection;
      const connection = socket && { bufferedBytes: () => socket.bufferedAmount, close: (code: number, reason: string) => socket.close(code, reason) };
      return ctx.services.realtime.watch(ctx.caller, input, connection, signal);
    }),
  });
}

export type AppRouter = ReturnType<typeof createAppRouter>;
