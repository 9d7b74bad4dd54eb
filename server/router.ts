// The API. Inputs are the zod schemas in schemas.ts; outputs are what the service contracts
// (services.ts) answer. The client-sdk imports `AppRouter` as a type only, and its declaration
// files reach only the light contract files the router's type names (context.ts, services.ts,
// api-types.ts), never an implementation.
import {
  adminCreateKeyInput,
  adminGrantInput,
  adminSetTenantInput,
  adminListKeysInput,
  adminRevokeKeyInput,
  batchIdInput,
  batchInput,
  createTokenInput,
  creditsInput,
  generateInput,
  idInput,
  listInput,
  onUpdateInput,
  sourceFromUrlInput,
  sourceIdInput,
  uploadSourceInput,
} from './schemas.ts';
import { openSubscriptionSession } from './subscription-session.ts';
import { createTRPC, subscriptionStream, type TRPCOptions } from './trpc.ts';

export interface RouterOptions extends TRPCOptions {
  /** The soonest an open subscription's credential is verified again (see subscription-session.ts). */
  credentialRecheckMs: number;
}

export function createAppRouter(options: RouterOptions) {
  const { router, authedProcedure, keyProcedure, operatorProcedure } = createTRPC(options);
  return router({
    /** Queue one prompt; answers at once with its id. */
    generate: keyProcedure.input(generateInput).mutation(({ ctx, input }) => ctx.services.generations.generate(ctx.caller, input, ctx.call)),
    /** Up to 1,000 prompts in one transaction. */
    batch: keyProcedure.input(batchInput).mutation(({ ctx, input }) => ctx.services.generations.batch(ctx.caller, input, ctx.call)),
    /** One generation with its assets and stage events. */
    status: authedProcedure.input(idInput).query(({ ctx, input }) => ctx.services.generations.status(ctx.caller, input.id)),
    /** The chain a generation belongs to, and its latest success (one indexed query). */
    chain: authedProcedure.input(idInput).query(({ ctx, input }) => ctx.services.generations.chain(ctx.caller, input.id)),
    /** Counts per state for a batch. */
    batchStatus: authedProcedure.input(batchIdInput).query(({ ctx, input }) => ctx.services.generations.batchStatus(ctx.caller, input.batchId)),
    /** The caller's generations, newest first, with cursor pagination. */
    list: keyProcedure.input(listInput).query(({ ctx, input }) => ctx.services.generations.list(ctx.caller, input)),
    /** Cancel every queued or running generation of a batch, at the provider too. */
    cancelBatch: keyProcedure.input(batchIdInput).mutation(({ ctx, input }) => ctx.services.generations.cancelBatch(ctx.caller, input.batchId)),
    /** Cancel queued or running work, at the provider too. */
    cancel: keyProcedure.input(idInput).mutation(({ ctx, input }) => ctx.services.generations.cancel(ctx.caller, input.id)),
    /** The model table: each model's price at the provider, and whether the caller's tier may use it. */
    models: keyProcedure.query(({ ctx }) => ctx.services.generations.models(ctx.caller)),
    /** The tenant's credit balance and its spend by model and day. */
    credits: keyProcedure.input(creditsInput).query(({ ctx, input }) => ctx.services.accounts.credits(ctx.caller, input)),
    /** Images to start from: uploaded, or fetched from a host the tenant allows; each kept once, reusable by id. */
    sources: router({
      /** An image as multipart/form-data (`file`, optional `filename`); the client-sdk's `sources.upload` sends it. */
      upload: keyProcedure.input(uploadSourceInput).mutation(({ ctx, input }) => ctx.services.sources.upload(ctx.caller, input)),
      /** An image fetched from one of the tenant's allowed source hosts (public addresses only). */
      fromUrl: keyProcedure.input(sourceFromUrlInput).mutation(({ ctx, input }) => ctx.services.sources.fromUrl(ctx.caller, input)),
      /** One of the caller's sources: its format, size and stored image's URL. */
      get: keyProcedure.input(sourceIdInput).query(({ ctx, input }) => ctx.services.sources.get(ctx.caller, input.id)),
    }),
    /** Operations: the caller's generations per state, the provider budgets and breaker. */
    ops: router({
      stats: keyProcedure.query(({ ctx }) => ctx.services.ops.stats(ctx.caller)),
    }),
    /**
     * A short-lived token for a browser: read and subscribe only, to one generation or batch.
     * Mint it in your backend (with the API key) and give it to the frontend. It works until it
     * expires or the key that minted it is revoked.
     */
    createToken: keyProcedure.input(createTokenInput).mutation(({ ctx, input }) => ctx.services.tokens.mint(ctx.caller, input)),
    /**
     * Every stage of the caller's generations as it happens (WebSocket only): one generation, one
     * batch, or all. Each event is tracked by its id, so a reconnecting client resumes after
     * the last event it received and misses nothing. It ends with UNAUTHORIZED once the
     * caller's key is revoked or its token expires.
     */
    onUpdate: authedProcedure.input(onUpdateInput).subscription(async ({ ctx, input, signal }) => {
      const session = openSubscriptionSession({
        authenticate: ctx.authenticate,
        authenticated: ctx.authenticated,
        connection: ctx.connection,
        signal,
        recheckMs: options.credentialRecheckMs,
      });
      try {
        return subscriptionStream(await ctx.services.realtime.watch(ctx.caller, input, ctx.connection, session.signal), session.end);
      } catch (error) {
        session.end();
        throw error;
      }
    }),
    /** The operator's procedures (the admin token, KILN_ADMIN_TOKEN): every tenant's keys and settings. */
    admin: router({
      /** Every tenant's work and the provider's state: queues, throughput by minute, budgets, breaker, each tenant's share. */
      ops: router({
        overview: operatorProcedure.query(({ ctx }) => ctx.services.ops.overview()),
      }),
      tenants: router({
        /** Every tenant with its settings and credit. */
        list: operatorProcedure.query(({ ctx }) => ctx.services.tenants.list()),
        /** Changes a tenant's tier, share-by, cap or request limits (null: back to the default). */
        set: operatorProcedure.input(adminSetTenantInput).mutation(({ ctx, input }) => ctx.services.tenants.set(input)),
        /** Adds credit; the tenant is charged for its generations from then on. */
        grant: operatorProcedure.input(adminGrantInput).mutation(({ ctx, input }) => ctx.services.tenants.grant(input)),
      }),
      keys: router({
        /** A new key for a tenant (created when new, with `tier` and `shareBy`); the key is shown this once. */
        create: operatorProcedure.input(adminCreateKeyInput).mutation(({ ctx, input }) => ctx.services.keys.create(input)),
        /** Keys, of one tenant or all: prefixes only, keys are stored hashed. */
        list: operatorProcedure.input(adminListKeysInput).query(({ ctx, input }) => ctx.services.keys.list(input)),
        /** Revokes a key by id or prefix; its tokens and open subscriptions end with it. */
        revoke: operatorProcedure.input(adminRevokeKeyInput).mutation(({ ctx, input }) => ctx.services.keys.revoke(input)),
      }),
    }),
  });
}

export type AppRouter = ReturnType<typeof createAppRouter>;
