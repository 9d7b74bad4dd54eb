// The API. Inputs are the zod schemas in schemas.ts; outputs are inferred from the services.
// The client-sdk imports `AppRouter` as a type only.
import { batchIdInput, batchInput, generateInput, idInput, listInput } from './schemas.ts';
import { createTRPC } from './trpc.ts';

export function createAppRouter(options: { isDev: boolean }) {
  const { router, authedProcedure } = createTRPC(options);
  return router({
    /** Queue one prompt; answers at once with its id. */
    generate: authedProcedure.input(generateInput).mutation(({ ctx, input }) => ctx.services.generations.generate(ctx.caller, input)),
    /** Up to 1,000 prompts in one transaction. */
    batch: authedProcedure.input(batchInput).mutation(({ ctx, input }) => ctx.services.generations.batch(ctx.caller, input)),
    /** One generation with its assets and stage events. */
    status: authedProcedure.input(idInput).query(({ ctx, input }) => ctx.services.generations.status(ctx.caller, input.id)),
    /** Counts per state for a batch. */
    batchStatus: authedProcedure.input(batchIdInput).query(({ ctx, input }) => ctx.services.generations.batchStatus(ctx.caller, input.batchId)),
    /** The caller's generations, newest first, with cursor pagination. */
    list: authedProcedure.input(listInput).query(({ ctx, input }) => ctx.services.generations.list(ctx.caller, input)),
    /** Cancel queued or running work, at the provider too. */
    cancel: authedProcedure.input(idInput).mutation(({ ctx, input }) => ctx.services.generations.cancel(ctx.caller, input.id)),
  });
}

export type AppRouter = ReturnType<typeof createAppRouter>;
