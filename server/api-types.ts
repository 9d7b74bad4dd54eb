// The API's vocabulary as plain types: what the services take once input is validated, and
// every shape they answer with. The client-sdk's type declarations reach this file (through
// the router's context and outputs), so it imports only types, and only from the files that
// hold the request vocabulary as `as const` lists and import nothing themselves.
//
// Inputs: the zod schemas in schemas.ts stay the one definition of validation. Each input
// type here states what its schema outputs, and schemas.ts proves at compile time that the
// two are the same type (see same-type.ts). Inferring the types from zod instead would put
// zod into every declaration file a client loads; restating them behind a proof keeps zod
// out and still lets no schema change what services receive without this file saying so.
//
// Outputs: services annotate their answers with these types, so a wrong or missing field
// is a compile error in the service, not a silent change of the API. Dates are `Date`s here;
// clients receive them as ISO strings (JSON), which tRPC's inferred output types say.
import type { AspectRatio, ModelId, ModelTier, UpscaleFactor } from '../jobs/provider/models.ts';
import type { CropStrategy, ImageFormat, Platform } from '../jobs/render/presets.ts';

/**
 * A generation's lifecycle. The list lives in db/schema.ts (GENERATION_STATES), a file that
 * imports kysely; schemas.ts proves this union equal to it.
 */
export type GenerationState = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/**
 * Whether a request may be served from an identical one of its tenant: 'default' when it names
 * a seed, 'reuse-unseeded' even without one, 'off' never. The list lives in
 * jobs/provider/cache-key.ts (a file that imports node:crypto); schemas.ts proves the two equal.
 */
export type CacheMode = 'default' | 'reuse-unseeded' | 'off';

/** How a generation was served without a provider call of its own: from an earlier success ('cache'), or by joining identical work ('joined'). */
export interface ServedFrom {
  kind: 'cache' | 'joined';
  /** The generation it was served from. */
  generationId: string;
}

/** How many of a set of generations are in each state. */
export type StateCounts = Record<GenerationState, number>;

// ── Validated inputs ─────────────────────────────────────────────────────────────────────

export interface CustomSize {
  width: number;
  height: number;
}

/**
 * What a generation does. The list lives in jobs/provider/models.ts (the model table, which
 * serves each operation); schemas.ts proves the two equal.
 */
export type Operation = 'text-to-image' | 'edit' | 'upscale' | 'remove-background' | 'image-to-image' | 'optimize';

/** What the optimiser lays a cut-out product on. */
export type CatalogueBackground = 'white' | 'transparent';

/**
 * The image an operation starts from: `sourceId`, a source of the caller's tenant
 * (sources.upload, sources.fromUrl); or `from`, one of its generations (a chain), and which of
 * its outputs (`fromOutput`, from 0; default 0). Exactly one of sourceId and from.
 */
export interface ImageInput {
  sourceId?: string | undefined;
  from?: string | undefined;
  fromOutput?: number | undefined;
}

/** What every operation's request shares, with the schema's defaults applied. */
export interface GenerationOptions {
  platforms: Platform[];
  /** Extra output sizes beside the platform presets. */
  sizes: CustomSize[];
  formats: ImageFormat[];
  crop: CropStrategy;
  /** A model that serves the operation; otherwise `tier` (or the tenant's tier) picks one. */
  model?: ModelId | undefined;
  tier?: ModelTier | undefined;
  priority: number;
  deadlineSeconds?: number | undefined;
  /** Whom within the tenant it is for (an end user, a store); opaque to Kiln. */
  subject?: string | undefined;
  cache: CacheMode;
  /** Images of one prediction (1–4), each with its own variants. */
  outputs: number;
}

/** A prompt in, an image out (the default operation). */
export interface TextToImageInput extends GenerationOptions {
  operation: 'text-to-image';
  prompt: string;
  negativePrompt?: string | undefined;
  aspectRatio: AspectRatio;
  seed?: number | undefined;
  /** Reference images (1–4 sources of the caller's tenant, in order) for a model that takes them. */
  references?: string[] | undefined;
}

/** A source changed as the prompt says. */
export interface EditInput extends GenerationOptions, ImageInput {
  operation: 'edit';
  prompt: string;
  seed?: number | undefined;
  /** Reference images shown with the source (1–4 sources of the caller's tenant, in order). */
  references?: string[] | undefined;
}

/** A source with every edge × scale. */
export interface UpscaleInput extends GenerationOptions, ImageInput {
  operation: 'upscale';
  scale: UpscaleFactor;
}

/** A source with its background made transparent. */
export interface RemoveBackgroundInput extends GenerationOptions, ImageInput {
  operation: 'remove-background';
}

/**
 * A product photo made a catalogue image: upscaled when its short edge is below
 * `targetShortEdge` (default: the server's), its background removed, framed on white or kept
 * transparent, padded to each platform's shape (crop 'pad'). Each paid step is a generation of
 * its own (`parts` in status), so a retry never pays for a step twice.
 */
export interface OptimizeInput extends GenerationOptions, ImageInput {
  operation: 'optimize';
  background: CatalogueBackground;
  targetShortEdge?: number | undefined;
}

/** A new picture from the prompt drawn over a source: strength 0 keeps the source, 1 ignores it. */
export interface ImageToImageInput extends GenerationOptions, ImageInput {
  operation: 'image-to-image';
  prompt: string;
  strength: number;
  seed?: number | undefined;
}

/** One item of a batch, with the schema's defaults applied: one operation's request. */
export type BatchItemInput = TextToImageInput | EditInput | UpscaleInput | RemoveBackgroundInput | ImageToImageInput | OptimizeInput;

/** Repeating a key (within the remembered time) answers with the first generation, if the request is the same. */
interface Keyed {
  idempotencyKey?: string | undefined;
}
export interface TextToImageGenerateInput extends TextToImageInput, Keyed {}
export interface EditGenerateInput extends EditInput, Keyed {}
export interface UpscaleGenerateInput extends UpscaleInput, Keyed {}
export interface RemoveBackgroundGenerateInput extends RemoveBackgroundInput, Keyed {}
export interface ImageToImageGenerateInput extends ImageToImageInput, Keyed {}
export interface OptimizeGenerateInput extends OptimizeInput, Keyed {}
export type GenerateInput = TextToImageGenerateInput | EditGenerateInput | UpscaleGenerateInput | RemoveBackgroundGenerateInput | ImageToImageGenerateInput | OptimizeGenerateInput;

export interface BatchInput {
  /** The subject of every item that names none. */
  subject?: string | undefined;
  items: BatchItemInput[];
  /** Repeating a key (within the remembered time) answers with the first batch, if the request is the same. */
  idempotencyKey?: string | undefined;
}

export interface ListInput {
  states?: GenerationState[] | undefined;
  batchId?: string | undefined;
  subject?: string | undefined;
  model?: ModelId | undefined;
  /** ISO 8601 with offset. */
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** What `onUpdate` follows: one generation, one batch, or (neither) all of the caller's. */
export interface WatchInput {
  generationId?: string | undefined;
  batchId?: string | undefined;
  lastEventId?: string | null | undefined;
}

/** Exactly one of generationId and batchId (the schema checks it). */
export interface CreateTokenInput {
  generationId?: string | undefined;
  batchId?: string | undefined;
  ttlSeconds: number;
}

/** The operator creates a key for a tenant, which is created too when new (with tier and share-by). */
export interface AdminCreateKeyInput {
  tenant: string;
  name?: string | undefined;
  tier?: 'free' | 'standard' | 'pro' | undefined;
  shareBy?: 'tenant' | 'subject' | undefined;
}

export interface AdminListKeysInput {
  /** A tenant's name or id; all tenants' keys without it. */
  tenant?: string | undefined;
}

export interface AdminRevokeKeyInput {
  /** The key's id, or a prefix (as `keys list` shows it) that names one active key. */
  key: string;
}

/** The operator changes a tenant's settings; what is not given stays, null goes back to the default. */
export interface AdminSetTenantInput {
  /** A tenant's name or id. */
  tenant: string;
  tier?: 'free' | 'standard' | 'pro' | undefined;
  shareBy?: 'tenant' | 'subject' | undefined;
  /** Its own cap on generations in progress; null: the configured default. */
  inProgressCap?: number | null | undefined;
  /** Its own request limits; null: its tier's. */
  requestsPerMinute?: number | null | undefined;
  requestBurst?: number | null | undefined;
  /** A request limit for each of its subjects; null: none (the burst: null is 1). */
  subjectRequestsPerMinute?: number | null | undefined;
  subjectRequestBurst?: number | null | undefined;
  /** Hosts its URL sources may come from ('cdn.shop.example', '*.shop.example'), normalised; null or []: none. */
  sourceHosts?: string[] | null | undefined;
}

export interface AdminGrantInput {
  tenant: string;
  /** Credit to add, in US dollars. */
  usd: number;
  note?: string | undefined;
}

/** An image to keep as a source: the upload's file part, and the name to remember it by. */
export interface UploadSourceInput {
  file: Blob;
  filename?: string | undefined;
}

export interface SourceFromUrlInput {
  /** An http(s) URL on one of the tenant's allowed source hosts. */
  url: string;
}

// ── Answers ──────────────────────────────────────────────────────────────────────────────

/** `generate` queued a new generation. */
export interface GenerationAccepted {
  id: string;
  status: 'queued';
  deduplicated: false;
}

/** `generate` met an idempotency key it knew: the first generation, as it stands now. */
export interface GenerationDeduplicated {
  id: string;
  status: GenerationState;
  deduplicated: true;
}

export type GenerateAnswer = GenerationAccepted | GenerationDeduplicated;

export interface BatchAccepted {
  batchId: string;
  /** The generations' ids, in the order of the items. */
  ids: string[];
  /** True when a repeated idempotency key answered with the first batch. */
  deduplicated: boolean;
}

export interface BatchCanceled {
  batchId: string;
  /** The generations this call canceled (those queued or running); the others had ended. */
  canceled: string[];
}

/** An item of a batch that failed, and why. */
export interface BatchItemFailure {
  /** Its place among the batch's items, from 0. */
  index: number;
  id: string;
  error: { code: string; message: string };
}

export interface CancelAnswer {
  id: string;
  status: GenerationState;
}

/** A read-and-subscribe token for one generation or batch. */
export interface ScopedToken {
  token: string;
  expiresAt: Date;
}

export interface AdminTenantView {
  id: string;
  name: string;
  tier: string;
  shareBy: 'tenant' | 'subject';
}

/** A tenant with every setting an operator can change, and its credit. */
export interface AdminTenantDetail extends AdminTenantView {
  inProgressCap: number | null;
  requestsPerMinute: number | null;
  requestBurst: number | null;
  subjectRequestsPerMinute: number | null;
  subjectRequestBurst: number | null;
  /** Hosts its URL sources may come from; empty: URL sources are off for it. */
  sourceHosts: string[];
  /** Null: not metered (never granted credit). */
  credit: { availableUsd: number; heldUsd: number } | null;
  createdAt: Date;
}

export interface AdminKeyCreated {
  /** The key itself: shown this once, Kiln keeps only its hash. */
  key: string;
  keyId: string;
  prefix: string;
  tenant: AdminTenantView;
  /** Whether the tenant was created by this call. */
  tenantCreated: boolean;
  /** Options given for a tenant that existed already with other values: they changed nothing. */
  ignored: ('tier' | 'shareBy')[];
}

export interface AdminKeyView {
  id: string;
  prefix: string;
  name: string;
  tenantId: string;
  tenantName: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface AdminKeyRevoked {
  keyId: string;
  tenantId: string;
}

export interface AssetView {
  /** Which of the generation's outputs it belongs to, from 0 (its original and that original's variants). */
  outputIndex: number;
  kind: 'original' | 'variant';
  platform: string | null;
  format: string;
  width: number;
  height: number;
  bytes: number;
  contentHash: string;
  contentType: string;
  url: string;
}

/** A generation without its assets and events, as listed. */
export interface GenerationSummary {
  id: string;
  batchId: string | null;
  /** Whom within the tenant it is for, as the request named it; null if it named none. */
  subject: string | null;
  state: GenerationState;
  /** The latest stage, finer than the state (e.g. 'rendering'). */
  stage: string;
  /** What it does; the prompt is empty for operations that take none (upscale, remove-background). */
  operation: Operation;
  prompt: string;
  /** The image source it starts from; null for text-to-image, or when it starts from a generation. */
  sourceId: string | null;
  /** The sources it shows the model as reference images, in order; empty when none. */
  references: string[];
  /** The generation whose output it starts from (its chain parent), and which output; null when none. */
  from: { generationId: string; output: number } | null;
  /** The root of the chain it belongs to (the root's own id); null while it is in none. */
  chainId: string | null;
  /** The composite generation it is a step or part of; null when it is none. */
  partOf: string | null;
  /** Images it asked for, each an original with its own variants among `assets`. */
  outputs: number;
  model: string;
  predictionId: string | null;
  /** Null: its own work; otherwise the identical generation it is (or will be) served from. */
  servedFrom: ServedFrom | null;
  deadlineAt: Date | null;
  error: { code: string; message: string } | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/**
 * Where a queued generation stands in its lane. The shape comes from db/queue-estimates.ts
 * (a file that imports kysely); generation-service.ts proves the two equal.
 */
export interface QueueEstimate {
  /** Generations ahead of this one in its lane. */
  position: number;
  /** Null while the lane has no recent history to estimate from. */
  estimatedStartAt: Date | null;
  estimatedFinishAt: Date | null;
}

/** One stage of a generation, as `status` lists them. */
export interface StageEvent {
  id: string;
  stage: string;
  at: Date;
  data: Record<string, unknown>;
}

/** A generation related to another (a child in its chain, a part of its composite), briefly. */
export interface RelatedGeneration {
  id: string;
  operation: Operation;
  model: string;
  state: GenerationState;
  error: { code: string; message: string } | null;
  createdAt: Date;
}

/** `status`: one generation with its assets and stage events. */
export interface GenerationStatusView extends GenerationSummary {
  /** While queued: its place in the queue; otherwise null. */
  queue: QueueEstimate | null;
  assets: AssetView[];
  events: StageEvent[];
  /** The generations made from its outputs, oldest first. */
  children: RelatedGeneration[];
  /** A composite's parts (each paid step, or one prediction per output), in order; empty for other generations. */
  parts: RelatedGeneration[];
  /** The optimiser's result: the photo's bytes, and the variants' bytes in all, once it has succeeded; null otherwise. */
  optimized: { bytesBefore: number; bytesAfter: number } | null;
}

/** `chain`: the chain a generation belongs to, and its latest success. */
export interface ChainView {
  /** The chain's root (null: the generation is in no chain, and is its own). */
  chainId: string | null;
  /** The chain's most recently finished success (the generation itself when it is in none and has succeeded). */
  latest: GenerationSummary | null;
}

export interface GenerationListItem extends GenerationSummary {
  assets: AssetView[];
}

export interface GenerationPage {
  items: GenerationListItem[];
  /** Pass it as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
}

export interface BatchStatusView {
  batchId: string;
  total: number;
  counts: StateCounts;
  done: boolean;
  /** Item by item, those that failed. */
  failures: BatchItemFailure[];
  createdAt: Date;
}

/** What subscribers receive for an event (`onUpdate`). */
export interface RealtimeEvent {
  /** Feed position; hand it back as `lastEventId` to resume after it. */
  id: string;
  generationId: string;
  batchId: string | null;
  /** The generation's subject (see GenerationSummary). */
  subject: string | null;
  stage: string;
  /** The generation's state once this event happened. */
  state: GenerationState;
  /** When it happened (ISO 8601, the database's clock). */
  at: string;
  data: Record<string, unknown>;
  /** On `succeeded`: the generation's assets. */
  assets?: AssetView[];
  /** On events of a batch: the batch's counts per state when the event was sent. */
  batch?: BatchProgress;
}

export interface BatchProgress {
  counts: StateCounts;
  total: number;
  done: boolean;
}

/**
 * The provider's circuit breaker. The union comes from jobs/provider/policies.ts (a file that
 * imports cockatiel); ops-service.ts proves the two equal.
 */
export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

/** One shared provider rate-limit budget. */
export interface BudgetView {
  name: string;
  /** How long a call asked for now would wait for its slot. */
  waitMs: number;
  pausedForMs: number;
  granted: number;
  throttled: number;
}

export interface OpsStats {
  /** The caller's generations per state. */
  generations: StateCounts;
  /** Of them, served from an earlier success, and by joining identical work (so far). */
  servedFrom: { cache: number; joined: number };
  provider: {
    /** null in an API-only process, which makes no provider calls (see the workers' /health). */
    breaker: BreakerState | null;
    budgets: BudgetView[];
  };
}

/** One shared provider budget as the operator sees it: its limit beside its state. */
export interface OperatorBudgetView extends BudgetView {
  /** Calls the budget allows per minute. */
  perMinute: number;
}

/** The operator's window on the whole system (every tenant): `admin.ops.overview`. */
export interface OperatorOverview {
  /** When it was read (the API process's clock). */
  at: Date;
  /** Generations in progress: waiting for a create slot, dispatched, running (of them at the provider). */
  generations: { waiting: number; dispatched: number; running: number; atProvider: number };
  /** Jobs of each pg-boss queue by state, and the generations waiting for the dispatcher (queue `kiln-dispatch`). */
  queues: { queue: string; state: 'queued' | 'scheduled' | 'active'; jobs: number; oldestSeconds: number | null }[];
  /** Generations that ended in each of the last minutes, oldest first. */
  throughput: { minute: Date; succeeded: number; failed: number; canceled: number }[];
  provider: {
    /** null in an API-only process, which makes no provider calls (see the workers' /ready). */
    breaker: BreakerState | null;
    budgets: OperatorBudgetView[];
  };
  /** Each tenant with provider work in progress or ended within `windowMinutes`, busiest first (at most 100). */
  tenants: { tenantId: string; name: string; tier: string; waiting: number; inProgress: number; atProvider: number; endedRecently: number; /** Its part of the provider's work now and lately, 0–1. */ share: number }[];
  windowMinutes: number;
}

/** One model of the model table, as the caller's tier sees it. */
export interface ModelView {
  id: string;
  /** The operations it serves. */
  operations: Operation[];
  /** What a request's `tier` picks it by, among the models of an operation. */
  tier: 'fast' | 'balanced' | 'quality';
  /** What one prediction costs at the provider: per image, or per second of GPU time. */
  price: { per: 'image'; usd: number } | { per: 'gpu-second'; usd: number; hardware: string; /** Reserved per generation; charged the time it took, never more. */ reserveSeconds: number };
  /** Whether the caller's tenant tier may use it. */
  available: boolean;
}

export interface CreditsInput {
  /** Usage over this many days, today included. */
  days: number;
}

/** One model's spend on one day. */
export interface UsageView {
  /** The day its generations were queued (UTC), YYYY-MM-DD. */
  day: string;
  model: string;
  /** Generations that ended; of them, succeeded. */
  generations: number;
  succeeded: number;
  /** Of them, served from an earlier success, and by joining identical work. */
  fromCache: number;
  joined: number;
  /** Charged to the tenant's credit, in US dollars (0 when it is not metered). */
  chargedUsd: number;
  /** What the provider bills for them, in US dollars. */
  providerCostUsd: number;
}

export interface CreditsView {
  /** False: the tenant was never granted credit, and its generations are not charged. */
  metered: boolean;
  /** What it may still spend, and what generations that have not ended hold, in US dollars. */
  availableUsd: number;
  heldUsd: number;
  usage: UsageView[];
}

/**
 * The formats and origins of an image source. The lists live in db/schema.ts (a file that
 * imports kysely); schemas.ts proves these equal to them.
 */
export type SourceFormat = 'png' | 'jpeg' | 'webp' | 'avif';
export type SourceOrigin = 'upload' | 'url';

/** An image source: stored once per tenant by its content, reusable by id. */
export interface SourceView {
  id: string;
  format: SourceFormat;
  width: number;
  height: number;
  bytes: number;
  /** SHA-256 of the bytes (hex). */
  contentHash: string;
  origin: SourceOrigin;
  /** The stored image (GET /assets/<sha256>.<ext>; immutable, like any asset). */
  url: string;
  /** The URL a URL source was fetched from, as the tenant named it; null for uploads. */
  fetchedFrom: string | null;
  /** The name an upload came with; null when it had none. */
  filename: string | null;
  createdAt: Date;
}

/** What `sources.upload` and `sources.fromUrl` answer. */
export interface SourceStored extends SourceView {
  /** True when the tenant had this image already: the earlier source, nothing stored again. */
  deduplicated: boolean;
}
