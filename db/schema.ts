// The database as kysely sees it: one interface per table, so every query in db/
// is checked against the real columns at compile time.
import type { ColumnType, Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely';

export const GENERATION_STATES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type GenerationState = (typeof GENERATION_STATES)[number];

/** A prediction's life at the provider (Replicate's statuses), as stored in `provider_status`. */
export const PREDICTION_STATUSES = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'] as const;
export type PredictionStatus = (typeof PREDICTION_STATUSES)[number];
/** After one of these the provider changes nothing more. */
export const FINAL_PREDICTION_STATUSES = ['succeeded', 'failed', 'canceled', 'aborted'] as const satisfies readonly PredictionStatus[];
export const isFinalPredictionStatus = (status: PredictionStatus): boolean => (FINAL_PREDICTION_STATUSES as readonly PredictionStatus[]).includes(status);

/** Tiers a tenant may have: they route to a model and weigh the tenant's fair share. */
export const TENANT_TIERS = ['free', 'standard', 'pro'] as const;
export type TenantTier = (typeof TENANT_TIERS)[number];

/** What a tenant's fair share is divided by: the tenant as a whole, or each subject it names. */
export const SHARE_BY = ['tenant', 'subject'] as const;
export type ShareBy = (typeof SHARE_BY)[number];

export interface TenantsTable {
  id: Generated<string>;
  name: string;
  tier: Generated<string>;
  share_by: Generated<ShareBy>;
  /** Generations it may have dispatched or running at once; null: the configured default. */
  in_progress_cap: number | null;
  /** Its own request limits; null: its tier's. */
  requests_per_minute: number | null;
  request_burst: number | null;
  /** A request limit for each of its subjects; null: none. */
  subject_requests_per_minute: number | null;
  subject_request_burst: number | null;
  /** Hosts its URL sources may come from ('shop.example', '*.shop.example'); empty: none. */
  source_hosts: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Generated<Date>;
}

export interface ApiKeysTable {
  id: Generated<string>;
  tenant_id: string;
  /** SHA-256 of the whole key. Keys are 256-bit random, so a fast hash is enough. */
  key_hash: Buffer;
  /** The first characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string;
  name: string;
  created_at: Generated<Date>;
  revoked_at: Date | null;
}

export interface BatchesTable {
  id: Generated<string>;
  tenant_id: string;
  item_count: number;
  idempotency_key: string | null;
  /** sha256 of the request as validated, for a repeated idempotency key to compare with. */
  request_hash: string | null;
  created_at: Generated<Date>;
}

export interface GenerationsTable {
  id: Generated<string>;
  tenant_id: string;
  batch_id: string | null;
  state: Generated<GenerationState>;
  /** The latest stage event's name: finer than state (e.g. 'rendering'). */
  stage: Generated<string>;
  prompt: string;
  model: string;
  /** The validated request (platforms, formats, crop, seed, aspect ratio…) as JSON. */
  request: ColumnType<GenerationRequestJson, string, string>;
  priority: Generated<number>;
  idempotency_key: string | null;
  /** Whom within the tenant it is for (an end user, a store), as the tenant names them; opaque. */
  subject: string | null;
  /** Incremented by each worker attempt; fences writes of attempts that lost their job. */
  attempt: Generated<number>;
  prediction_id: string | null;
  /** The caller's deadline: final by then, queue wait included (null: none asked for; see jobs/phases/deadlines.ts). */
  deadline_at: Date | null;
  /** When the provider must have finished the prediction: its run limit, or the deadline if sooner. */
  prediction_deadline_at: Date | null;
  /** The attempt that sent a create whose prediction id is not stored yet (see worker). */
  create_sent_attempt: number | null;
  create_sent_at: Date | null;
  create_settles_at: Date | null;
  /** The provider's last known status of the prediction and its progress (0..1). */
  provider_status: PredictionStatus | null;
  provider_progress: number | null;
  /** The number of the poll that should run next (see wait-phase.ts); 0 before the first. */
  poll_seq: Generated<number>;
  /** When the dispatcher handed it to the create phase (see jobs/dispatch/); null while it waits its turn. */
  dispatched_at: Date | null;
  /** How its model is billed ('image' or 'gpu-second') and the price of one, in millionths of a dollar (see db/credits.ts). */
  price_per: 'image' | 'gpu-second' | null;
  unit_price: Int8 | null;
  /** Held from its tenant's credit until it ends; 0 when the tenant is not metered. */
  reserved: Int8WithDefault;
  /** The provider's predict_time for its prediction. */
  predict_seconds: number | null;
  /** What the provider bills for it, set when it ends. */
  provider_cost: Int8 | null;
  /** Its place in its lane, fixed when queued: created_at, earlier by its priority's worth of waiting (jobs/dispatch/select.ts). */
  dispatch_order: Date;
  /** sha256 of its provider input (model route and input, canonical JSON): identical requests share it (see migration 0014). */
  fingerprint: string | null;
  /** Whether it may be served from an identical generation of its tenant (its cache mode). */
  may_reuse: Generated<boolean>;
  /** The generation it is served from, and how: an earlier success, or identical work it joined; null: its own work. */
  served_from_id: string | null;
  served_from_kind: ServedFromKind | null;
  /** The API request that queued it (its request id) and that call's trace context (W3C traceparent): see migration 0017. */
  request_id: string | null;
  traceparent: string | null;
  /** What it is charged when served from another, in micro-dollars. */
  cache_price: Int8 | null;
  /** The generation whose output it starts from (a chain), and which of its outputs (migration 0023). */
  parent_id: string | null;
  parent_output: number | null;
  /** Its chain's root: set on every member of a chain, the root included, once it has a child. */
  chain_id: string | null;
  /** The composite it is a step or part of, and its place there (from 0). */
  part_of: string | null;
  part_index: number | null;
  /** Why it is not waiting work yet: its input is not made ('input'), or it is a composite waiting for its parts ('parts'). */
  awaiting: AwaitingKind | null;
  error_code: string | null;
  error_message: string | null;
  created_at: Generated<Date>;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Generated<Date>;
}

/** What a held generation waits for (migration 0023). */
export const AWAITING_KINDS = ['input', 'parts'] as const;
export type AwaitingKind = (typeof AWAITING_KINDS)[number];

/** How a generation is served from another: 'cache', from an earlier success; 'joined', by joining identical work in flight. */
export const SERVED_FROM_KINDS = ['cache', 'joined'] as const;
export type ServedFromKind = (typeof SERVED_FROM_KINDS)[number];

export interface GenerationRequestJson {
  platforms: string[];
  customSizes: { width: number; height: number }[];
  formats: string[];
  crop: string;
  aspectRatio: string;
  seed: number | null;
  negativePrompt: string | null;
  /** What it does (jobs/provider/models.ts); rows from before image operations have none: text-to-image. */
  operation?: string;
  /** The image it starts from (image operations); null or absent for text-to-image. */
  input?: InputImageJson | null;
  /** image-to-image's strength (0–1); upscale's factor. */
  strength?: number | null;
  scale?: number | null;
  /** Images asked of the prediction; absent: one. */
  outputs?: number;
  /** The optimiser's framing (operation 'optimize'). */
  optimize?: { background: string; targetShortEdge: number } | null;
  /** The generation output it builds on, as the request named it (the input is that output once it exists). */
  from?: { generationId: string; output: number } | null;
  /** Reference images shown to the model, in the request's order; absent: none. */
  references?: InputImageJson[];
}

/**
 * The image a generation starts from, as it was when it was known: enough for the worker to read
 * its bytes and to upload them to the provider once. A source the tenant gave, or an output of
 * another generation (a chain, or an earlier step of a composite).
 */
export type InputImageJson = (
  | { kind: 'source'; sourceId: string }
  | { kind: 'generation'; generationId: string; outputIndex: number }
) & {
  /** SHA-256 of the bytes (hex): how the provider's copy is found again (provider_files). */
  contentHash: string;
  /** Its object in the asset store. */
  storageKey: string;
  format: SourceFormat;
  /** Its size; absent on rows from before chains. */
  bytes?: number;
};

/** Where an input image came from, for events and spans: its source, or its generation and output. */
export const inputImageOrigin = (image: InputImageJson): Record<string, string | number> =>
  image.kind === 'source' ? { sourceId: image.sourceId } : { generationId: image.generationId, outputIndex: image.outputIndex };

/** An output's original, as a child that builds on it needs it. */
export type StoredOriginal = Pick<Asset, 'output_index' | 'content_hash' | 'storage_key' | 'format' | 'bytes'>;

/** A generation's output as another generation's input image; undefined when its format is not one an input may have. */
export function outputAsInput(generationId: string, original: StoredOriginal): InputImageJson | undefined {
  const format = SOURCE_FORMATS.find((known) => known === original.format);
  if (!format) return undefined;
  return { kind: 'generation', generationId, outputIndex: original.output_index, contentHash: original.content_hash, storageKey: original.storage_key, format, bytes: original.bytes };
}

/** How a person names an input image in a message: "source …", or "output 1 of generation …". */
export const describeInputImage = (image: InputImageJson): string =>
  image.kind === 'source' ? `source ${image.sourceId}` : `output ${image.outputIndex + 1} of generation ${image.generationId}`;

export interface GenerationEventsTable {
  id: Generated<string>; // bigint identity; read as string to keep all 64 bits
  generation_id: string;
  tenant_id: string;
  batch_id: string | null;
  /** The generation's subject, copied like tenant_id and batch_id. */
  subject: string | null;
  stage: string;
  data: ColumnType<Record<string, unknown>, string | undefined, string>;
  at: Generated<Date>;
  /** The writing transaction (xid8, read as a string); with `id`, the event's feed position. */
  xid: Generated<string>;
}

export interface AssetsTable {
  id: Generated<string>;
  generation_id: string;
  tenant_id: string;
  /** Which output of its generation's prediction it comes from, from 0 (migration 0020). */
  output_index: Generated<number>;
  kind: 'original' | 'variant';
  platform: string | null;
  format: string;
  width: number;
  height: number;
  bytes: number;
  content_hash: string;
  storage_key: string;
  content_type: string;
  created_at: Generated<Date>;
}

/** Formats an image source may have: what the renderer reads (jobs/render/render-variants.ts sniffs them). */
export const SOURCE_FORMATS = ['png', 'jpeg', 'webp', 'avif'] as const;
export type SourceFormat = (typeof SOURCE_FORMATS)[number];

/** How a source came in: uploaded, or fetched from a URL the tenant named. */
export const SOURCE_ORIGINS = ['upload', 'url'] as const;
export type SourceOrigin = (typeof SOURCE_ORIGINS)[number];

/** An image a tenant gave Kiln to work from (migration 0018): stored once per tenant, by content. */
export interface ImageSourcesTable {
  id: string;
  tenant_id: string;
  /** SHA-256 of the bytes (hex): unique within the tenant. */
  content_hash: string;
  /** The object in the asset store (`<sha256>.<ext>`), shared with any asset of the same bytes. */
  storage_key: string;
  format: SourceFormat;
  width: number;
  height: number;
  bytes: number;
  origin: SourceOrigin;
  /** The URL a URL source was fetched from, as the tenant named it; null for uploads. */
  url: string | null;
  /** The name an upload came with; null when it had none. */
  filename: string | null;
  created_at: Generated<Date>;
}

/** A stored object's key that no asset may name any more (migration 0016): retention deletes its object. */
export interface StorageOrphansTable {
  storage_key: string;
  since: Generated<Date>;
  /** When its object was deleted; the row stays a while as a tombstone. */
  object_deleted_at: Date | null;
}

export interface SecretsTable {
  name: string;
  value: Buffer;
  created_at: Generated<Date>;
}

export interface WebhookDeliveriesTable {
  id: string;
  received_at: Generated<Date>;
}

export interface ProviderRateLimitsTable {
  name: string;
  tat: ColumnType<Date, Date | undefined, Date>;
  last_slot: ColumnType<Date, Date | undefined, Date>;
  paused_until: ColumnType<Date, Date | undefined, Date>;
  granted: ColumnType<string, never, never>;
  throttled: ColumnType<string, never, never>;
}

/** An input image uploaded to the provider, per account and content (migration 0019); see db/provider-files.ts. */
export interface ProviderFilesTable {
  scope: string;
  content_hash: string;
  file_id: string | null;
  url: string | null;
  expires_at: Date | null;
  uploaded_at: Date | null;
  uploads: Generated<number>;
}

export interface DispatchLanesTable {
  lane: string;
  pass: number;
}

export interface DispatchClockTable {
  id: number;
  clock: Generated<number>;
}

/** What a query runs on: the database, or a transaction in progress. */
export type Db = Kysely<Database> | Transaction<Database>;

/** A bigint column: pg reads it as a string (it may not fit a number exactly); written from a number. */
export type Int8 = ColumnType<string, number | string, number | string>;
/** An Int8 with a default: it may be left out when inserting. */
export type Int8WithDefault = ColumnType<string, number | string | undefined, number | string>;

export interface CreditBalancesTable {
  tenant_id: string;
  /** Millionths of a dollar the tenant may still spend; never below zero. */
  available: Int8;
  /** Reserved by generations that have not ended. */
  held: Int8WithDefault;
}

export type CreditMovement = 'grant' | 'reserve' | 'charge' | 'refund';

export interface CreditLedgerTable {
  id: Generated<string>;
  tenant_id: string;
  generation_id: string | null;
  kind: CreditMovement;
  model: string | null;
  available_delta: Int8;
  held_delta: Int8WithDefault;
  spent: Int8WithDefault;
  note: string | null;
  at: Generated<Date>;
}

export interface RequestBudgetsTable {
  /** 't:<tenant id>' or 's:<tenant id>:<subject>'. */
  key: string;
  tat: Date;
}

export interface Database {
  kiln_secrets: SecretsTable;
  provider_rate_limits: ProviderRateLimitsTable;
  dispatch_lanes: DispatchLanesTable;
  dispatch_clock: DispatchClockTable;
  webhook_deliveries: WebhookDeliveriesTable;
  tenants: TenantsTable;
  api_keys: ApiKeysTable;
  batches: BatchesTable;
  generations: GenerationsTable;
  request_budgets: RequestBudgetsTable;
  credit_balances: CreditBalancesTable;
  credit_ledger: CreditLedgerTable;
  generation_events: GenerationEventsTable;
  assets: AssetsTable;
  image_sources: ImageSourcesTable;
  provider_files: ProviderFilesTable;
  storage_orphans: StorageOrphansTable;
}

export type Generation = Selectable<GenerationsTable>;
export type GenerationEvent = Selectable<GenerationEventsTable>;
export type Asset = Selectable<AssetsTable>;
export type NewAsset = Insertable<AssetsTable>;
export type Tenant = Selectable<TenantsTable>;
export type ImageSource = Selectable<ImageSourcesTable>;
export type NewImageSource = Insertable<ImageSourcesTable>;
