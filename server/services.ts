// The services behind the router, as named contracts: what each use case takes and answers,
// free of how it is done (kysely, pg-boss, the event feed). The router's context carries a
// `KilnServices`; the implementations (generation-service.ts, realtime/realtime-service.ts,
// token-service.ts, ops-service.ts) declare that they return these interfaces.
//
// The client-sdk's type declarations reach this file through the router's context type, so
// it imports only tRPC and the plain types of api-types.ts. Answers are those types; inputs
// are the validated types that schemas.ts proves equal to its zod schemas' output.
import type { TrackedEnvelope } from '@trpc/server';
import type {
  AdminCreateKeyInput,
  AdminGrantInput,
  AdminSetTenantInput,
  AdminTenantDetail,
  AdminKeyCreated,
  AdminKeyRevoked,
  AdminKeyView,
  AdminListKeysInput,
  AdminRevokeKeyInput,
  BatchAccepted,
  BatchCanceled,
  BatchInput,
  BatchStatusView,
  CancelAnswer,
  CreateTokenInput,
  CreditsInput,
  CreditsView,
  GenerateAnswer,
  GenerateInput,
  GenerationPage,
  GenerationStatusView,
  ChainView,
  ListInput,
  ModelView,
  OpsStats,
  OperatorOverview,
  RealtimeEvent,
  ScopedToken,
  SourceFromUrlInput,
  SourceStored,
  SourceView,
  UploadSourceInput,
  WatchInput,
} from './api-types.ts';

/** What a scoped token grants: one generation, or one batch. */
export type Scope = { kind: 'generation'; id: string } | { kind: 'batch'; id: string };

/** Who is calling: a tenant, with an API key's full access or a scoped token's. */
export interface Caller {
  tenantId: string;
  tenantTier: string;
  /** The API key behind the call: the caller's own, or the one that minted its token. */
  keyId: string;
  /** Null for API keys; set for scoped tokens. */
  scope: Scope | null;
}

/** The API call a use case serves, as the work it queues remembers it: for log lines and traces, never for decisions. */
export interface CallOrigin {
  requestId: string;
  /** The call's trace context (W3C traceparent); undefined when no trace is recorded. */
  traceparent: string | undefined;
}

export interface GenerationService {
  /** Queues one prompt; a repeated idempotency key answers with the first generation. */
  generate(caller: Caller, input: GenerateInput, origin: CallOrigin): Promise<GenerateAnswer>;
  /** Queues every item in one transaction. */
  batch(caller: Caller, input: BatchInput, origin: CallOrigin): Promise<BatchAccepted>;
  status(caller: Caller, id: string): Promise<GenerationStatusView>;
  /** The chain a generation belongs to, and its latest success. */
  chain(caller: Caller, id: string): Promise<ChainView>;
  batchStatus(caller: Caller, batchId: string): Promise<BatchStatusView>;
  /** The caller's generations, newest first. */
  list(caller: Caller, input: ListInput): Promise<GenerationPage>;
  /** Cancels queued or running work, at the provider too. */
  cancel(caller: Caller, id: string): Promise<CancelAnswer>;
  /** Cancels every queued or running generation of a batch, at the provider too. */
  cancelBatch(caller: Caller, batchId: string): Promise<BatchCanceled>;
  /** The model table: each model's price, and whether the caller's tier may use it. */
  models(caller: Caller): Promise<ModelView[]>;
}

/** The subscriber's end of the WebSocket, as far as a subscription needs it. */
export interface SubscriberConnection {
  /** Bytes written to the socket that the reader has not taken yet. */
  bufferedBytes(): number;
  /** Ends the connection; the client reconnects and resumes after the last event it got. */
  close(code: number, reason: string): void;
}

/**
 * One event as a subscription yields it. Whatever form the service keeps it in (the feed
 * shares one pre-encoded instance among subscribers), it serializes to the event's view;
 * tRPC types the subscription's output by this `toJSON`.
 */
export interface EventMessage {
  toJSON(): RealtimeEvent;
}

export interface RealtimeService {
  /**
   * The events the caller asked for, each tracked by its id so a reconnecting client resumes
   * after the last one it got. Rejects (NOT_FOUND, FORBIDDEN, BAD_REQUEST) before anything
   * streams, so the error reaches the client typed.
   */
  watch(
    caller: Caller,
    input: WatchInput,
    connection: SubscriberConnection | undefined,
    signal: AbortSignal | undefined,
  ): Promise<AsyncGenerator<TrackedEnvelope<EventMessage>>>;
}

export interface TokenService {
  /** A token for one generation or batch the caller owns. */
  mint(caller: Caller, input: CreateTokenInput): Promise<ScopedToken>;
}

export interface AccountService {
  /** The tenant's credit balance, and its spend by model and day. */
  credits(caller: Caller, input: CreditsInput): Promise<CreditsView>;
}

/** The operator's key management (admin procedures); no tenant reaches it. */
export interface KeyService {
  /** A new key for a tenant, created with it when new; the key is answered this once. */
  create(input: AdminCreateKeyInput): Promise<AdminKeyCreated>;
  list(input: AdminListKeysInput): Promise<AdminKeyView[]>;
  /** Revokes an active key: refused at once by this process, within the auth cache time by others. */
  revoke(input: AdminRevokeKeyInput): Promise<AdminKeyRevoked>;
}

/** The operator's tenant management (admin procedures): settings and credit. */
export interface TenantAdminService {
  list(): Promise<AdminTenantDetail[]>;
  /** Changes what the input gives; API processes apply it within the auth cache time. */
  set(input: AdminSetTenantInput): Promise<AdminTenantDetail>;
  /** Adds credit (and meters the tenant from then on). */
  grant(input: AdminGrantInput): Promise<AdminTenantDetail>;
}

/** Image sources: stored once per tenant by content, reusable by id (operations take them by id). */
export interface SourceService {
  /** Keeps an uploaded image; the same bytes again answer the source that has them. */
  upload(caller: Caller, input: UploadSourceInput): Promise<SourceStored>;
  /** Fetches an image from one of the tenant's allowed hosts (guarded: public addresses only) and keeps it. */
  fromUrl(caller: Caller, input: SourceFromUrlInput): Promise<SourceStored>;
  /** One of the caller's sources; another tenant's id answers NOT_FOUND, as a missing one does. */
  get(caller: Caller, id: string): Promise<SourceView>;
}

export interface OpsService {
  stats(caller: Caller): Promise<OpsStats>;
  /** Every tenant's work and the provider's state, for the operator (admin procedures only). */
  overview(): Promise<OperatorOverview>;
}

/** The services one API process runs, as the router's context carries them. */
export interface KilnServices {
  generations: GenerationService;
  realtime: RealtimeService;
  tokens: TokenService;
  ops: OpsService;
  accounts: AccountService;
  keys: KeyService;
  tenants: TenantAdminService;
  sources: SourceService;
}
