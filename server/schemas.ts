// Every input Kiln accepts, as zod schemas: the single source of truth for validation on the
// server and for the input types the client-sdk infers. What each schema outputs — what the
// services receive — is stated in api-types.ts and proven equal here, at the end.
import { z } from 'zod';
import { CACHE_MODES } from '../jobs/provider/cache-key.ts';
import { ASPECT_RATIOS, DEFAULT_STRENGTH, MAX_OUTPUTS, MAX_REFERENCES, MODEL_IDS, MODEL_TIERS, OPERATIONS, UPSCALE_FACTORS } from '../jobs/provider/models.ts';
import { CATALOGUE_BACKGROUNDS } from '../jobs/render/catalogue.ts';
import { CROP_STRATEGIES, CUSTOM_SIZE_LIMITS, IMAGE_FORMATS, PLATFORMS, PLATFORM_PRESETS, type Platform } from '../jobs/render/presets.ts';
import { GENERATION_STATES, SERVED_FROM_KINDS, SHARE_BY, SOURCE_FORMATS, SOURCE_ORIGINS, TENANT_TIERS } from '../db/schema.ts';
import { normalizeHostPattern } from '../jobs/sources/host-allowlist.ts';
import type * as api from './api-types.ts';
import type { Equal, Expect } from './same-type.ts';

export const LIMITS = {
  promptLength: 2000,
  batchItems: 1000,
  customSizes: 8,
  variantsPerGeneration: 40,
  outputPixels: 64_000_000,
  listPageSize: 100,
  idempotencyKeyLength: 200,
  subjectLength: 200,
  sourceUrlLength: 2048,
  sourceFilenameLength: 255,
  /** Allowed source hosts of one tenant: a store's few CDNs, not a list of the web. */
  sourceHosts: 100,
  /** The short edge the optimiser may be asked to reach: a thumbnail's to a print's. */
  optimizeShortEdge: { min: 256, max: 4096 },
} as const;

/** PostgreSQL text cannot hold NUL, and no prompt needs one. */
const withoutNul = (what: string) => [(value: string) => !value.includes('\u0000'), `${what} must not contain NUL characters`] as const;

/**
 * Text must be whole characters: a lone surrogate (from JSON's `\ud800`, or bytes of a request
 * body that were not valid UTF-8, which the HTTP entry marks as one) would be stored as U+FFFD,
 * silently changing the prompt.
 */
const wellFormed = (what: string) =>
  [(value: string) => value.isWellFormed(), `${what} must be well-formed UTF-8 text (no lone surrogates or invalid bytes)`] as const;

/** `missing`: what a request without one is told (an edit must say what to change). */
const promptText = (missing: string) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? missing : 'prompt must be a string') })
    .trim()
    .min(1, 'prompt must not be empty')
    .max(LIMITS.promptLength, `prompt must be at most ${LIMITS.promptLength} characters`)
    .refine(...withoutNul('prompt'))
    .refine(...wellFormed('prompt'));

const prompt = promptText('prompt must be a string');

/**
 * Whom within the tenant a request is for (an end user, a store), as the tenant names them.
 * Opaque to Kiln, so kept exactly as sent (no trimming); it is compared and filtered on, so it
 * must be text that survives storage unchanged (well-formed, no control characters). Its
 * length is counted in characters, as the database's check counts it.
 */
/** Repeating a key answers with the first request's result (generate or batch), within the remembered time. */
const idempotencyKey = z.string().min(1).max(LIMITS.idempotencyKeyLength).refine(...withoutNul('idempotencyKey')).refine(...wellFormed('idempotencyKey'));

/**
 * A short name kept exactly as sent (a subject, a file name): not empty, at most `maxCharacters`
 * characters (not UTF-16 units), no control characters, well-formed.
 */
const shortName = (field: string, options: { maxCharacters: number; notText: string; controlCharacters: string }) =>
  z
    .string({ error: options.notText })
    .min(1, `${field} must not be empty`)
    .refine((value) => [...value].length <= options.maxCharacters, `${field} must be at most ${options.maxCharacters} characters`)
    .refine((value) => !/\p{Cc}/u.test(value), options.controlCharacters)
    .refine(...wellFormed(field));

const subject = shortName('subject', {
  maxCharacters: LIMITS.subjectLength,
  notText: 'subject must be a string',
  controlCharacters: 'subject must not contain control characters (such as NUL, tab or newline)',
});

const uniqueList = <T extends z.ZodType>(item: T, what: string, max: number) =>
  z
    .array(item)
    .min(1, `give at least one ${what}`)
    .max(max, `at most ${max} ${what}s`)
    .refine((items) => new Set(items).size === items.length, `${what}s must not repeat`);

const customSize = z.object({
  width: z.int().min(CUSTOM_SIZE_LIMITS.min).max(CUSTOM_SIZE_LIMITS.max, `width must be between ${CUSTOM_SIZE_LIMITS.min} and ${CUSTOM_SIZE_LIMITS.max} pixels`),
  height: z.int().min(CUSTOM_SIZE_LIMITS.min).max(CUSTOM_SIZE_LIMITS.max, `height must be between ${CUSTOM_SIZE_LIMITS.min} and ${CUSTOM_SIZE_LIMITS.max} pixels`),
});

/** What every operation's request shares: what is delivered (variants), by which model, and how it is scheduled. */
const generationOptions = {
  platforms: uniqueList(z.enum(PLATFORMS, { error: `platform must be one of: ${PLATFORMS.join(', ')}` }), 'platform', PLATFORMS.length).default(['instagram-post']),
  /** Extra output sizes beside the platform presets. */
  sizes: z
    .array(customSize)
    .max(LIMITS.customSizes, `at most ${LIMITS.customSizes} custom sizes`)
    .refine((sizes) => new Set(sizes.map((size) => `${size.width}x${size.height}`)).size === sizes.length, 'sizes must not repeat')
    .default([]),
  formats: uniqueList(z.enum(IMAGE_FORMATS, { error: `format must be one of: ${IMAGE_FORMATS.join(', ')}` }), 'format', IMAGE_FORMATS.length).default(['webp']),
  crop: z.enum(CROP_STRATEGIES, { error: `crop must be one of: ${CROP_STRATEGIES.join(', ')}` }).default('centre'),
  /** A specific model; otherwise `tier` (or the tenant's tier) picks one. */
  model: z.enum(MODEL_IDS, { error: `model must be one of: ${MODEL_IDS.join(', ')}` }).optional(),
  tier: z.enum(MODEL_TIERS, { error: `tier must be one of: ${MODEL_TIERS.join(', ')}` }).optional(),
  /** Higher runs first within the queue. */
  priority: z.int().min(-10).max(10, 'priority must be between -10 and 10').default(0),
  /**
   * Give up (and cancel at the provider) if not finished this many seconds after it was queued.
   * Default: the server's KILN_DEADLINE_SECONDS.
   */
  deadlineSeconds: z.int().min(10, 'deadlineSeconds must be at least 10').max(86_400, 'deadlineSeconds must be at most 86400 (a day)').optional(),
  /** Whom within the tenant it is for; fair share and limits may apply per subject. */
  subject: subject.optional(),
  /**
   * Whether it may be served from an identical request of the tenant (same model, prompt,
   * parameters and seed): 'default' when seeded, 'reuse-unseeded' even without a seed, 'off' never.
   */
  cache: z.enum(CACHE_MODES, { error: `cache must be one of: ${CACHE_MODES.join(', ')}` }).default('default'),
  /** Images, each an original with its own variants: one prediction of a model with num_outputs, else one prediction each (distinct seeds). */
  outputs: z.int({ error: 'outputs must be a whole number' }).min(1, `outputs must be between 1 and ${MAX_OUTPUTS}`).max(MAX_OUTPUTS, `outputs must be between 1 and ${MAX_OUTPUTS}`).default(1),
};

/** What a generation renders: its variants, for each of its outputs. */
interface RenderRequest {
  platforms: readonly Platform[];
  sizes: readonly { width: number; height: number }[];
  formats: readonly string[];
  outputs: number;
}
/** Output pixels one generation may ask for, so one request cannot monopolise the renderers. */
const outputPixels = (input: RenderRequest) =>
  [...input.platforms.map((platform) => PLATFORM_PRESETS[platform]), ...input.sizes].reduce((sum, size) => sum + size.width * size.height, 0) *
  input.formats.length *
  input.outputs;
const variantCountWithinLimit = (input: RenderRequest) =>
  (input.platforms.length + input.sizes.length) * input.formats.length * input.outputs <= LIMITS.variantsPerGeneration && outputPixels(input) <= LIMITS.outputPixels;
const tooManyVariants = {
  message: `(platforms + sizes) × formats × outputs must be at most ${LIMITS.variantsPerGeneration} variants and ${LIMITS.outputPixels / 1_000_000} megapixels in all`,
  path: ['formats'],
};

const seed = z.int().min(0).max(2 ** 32 - 1, 'seed must be between 0 and 4294967295').optional();
/**
 * The image an operation starts from: a source of the caller's tenant (sources.upload / fromUrl),
 * or an output of one of its generations (`from`, and which output: a chain).
 */
const imageInput = {
  sourceId: z.uuid({ error: 'sourceId must be a source UUID as returned by sources.upload or sources.fromUrl' }).optional(),
  from: z.uuid({ error: 'from must be a generation UUID as returned by generate' }).optional(),
  fromOutput: z.int({ error: 'fromOutput must be a whole number' }).min(0, `fromOutput must be between 0 and ${MAX_OUTPUTS - 1}`).max(MAX_OUTPUTS - 1, `fromOutput must be between 0 and ${MAX_OUTPUTS - 1}`).optional(),
};
/** Exactly one of sourceId and from; fromOutput only with from. */
const oneImageInput = (input: { sourceId?: string | undefined; from?: string | undefined; fromOutput?: number | undefined; operation: string }, ctx: z.RefinementCtx) => {
  const issue = (message: string, field: string) => ctx.addIssue({ code: 'custom', message, path: [field] });
  if (input.sourceId !== undefined && input.from !== undefined) issue('give sourceId or from, not both', 'from');
  else if (input.sourceId === undefined && input.from === undefined) issue(`${input.operation} starts from an image: give sourceId (an image source) or from (a generation to build on)`, 'sourceId');
  else if (input.fromOutput !== undefined && input.from === undefined) issue('fromOutput goes with from: it says which output of that generation to build on', 'fromOutput');
};
/** Images the model is shown beside the prompt (and an edit's source), in order: sources of the caller's tenant. */
const references = uniqueList(z.uuid({ error: 'a reference must be a source UUID as returned by sources.upload or sources.fromUrl' }), 'reference', MAX_REFERENCES).optional();

/**
 * Each operation's own fields, by `operation`. Text-to-image is the default, so a request that
 * names no operation is what it always was.
 */
const operationFields = {
  'text-to-image': {
    operation: z.literal('text-to-image').default('text-to-image'),
    prompt,
    negativePrompt: z.string().trim().max(LIMITS.promptLength).refine(...withoutNul('negativePrompt')).refine(...wellFormed('negativePrompt')).optional(),
    aspectRatio: z.enum(ASPECT_RATIOS, { error: `aspectRatio must be one of: ${ASPECT_RATIOS.join(', ')}` }).default('1:1'),
    seed,
    references,
  },
  /** The source changed as the prompt says; it keeps its size. */
  edit: { operation: z.literal('edit'), ...imageInput, prompt: promptText('prompt is required for edit: say what to change in the image'), seed, references },
  /** Every edge × scale. */
  upscale: {
    operation: z.literal('upscale'),
    ...imageInput,
    scale: z.literal(UPSCALE_FACTORS, { error: `scale must be one of: ${UPSCALE_FACTORS.join(', ')}` }).default(2),
  },
  /** The background made transparent (PNG and WebP variants keep it; JPEG has none). */
  'remove-background': { operation: z.literal('remove-background'), ...imageInput },
  /** A new picture from the prompt, drawn over the source: strength 0 keeps the source, 1 ignores it. */
  'image-to-image': {
    operation: z.literal('image-to-image'),
    ...imageInput,
    prompt: promptText('prompt is required for image-to-image: describe the picture to draw from the image'),
    strength: z.number({ error: 'strength must be a number between 0 and 1' }).min(0, 'strength must be between 0 and 1').max(1, 'strength must be between 0 and 1').default(DEFAULT_STRENGTH),
    seed,
  },
  /**
   * A store's product photo made a catalogue image: upscaled when its short edge is below the
   * target, its background removed, framed on white (or kept transparent), padded to each
   * platform's shape. Each paid step is a generation of its own.
   */
  optimize: {
    operation: z.literal('optimize'),
    ...imageInput,
    background: z.enum(CATALOGUE_BACKGROUNDS, { error: `background must be one of: ${CATALOGUE_BACKGROUNDS.join(', ')}` }).default('white'),
    targetShortEdge: z
      .int({ error: 'targetShortEdge must be a whole number of pixels' })
      .min(LIMITS.optimizeShortEdge.min, `targetShortEdge must be between ${LIMITS.optimizeShortEdge.min} and ${LIMITS.optimizeShortEdge.max} pixels`)
      .max(LIMITS.optimizeShortEdge.max, `targetShortEdge must be between ${LIMITS.optimizeShortEdge.min} and ${LIMITS.optimizeShortEdge.max} pixels`)
      .optional(),
  },
} as const;

const operationError = `operation must be one of: ${OPERATIONS.join(', ')}`;

/** Repeating a generate with the same key returns the first generation instead of a new one. */
const keyed = { idempotencyKey: idempotencyKey.optional() };

// One operation's request: its own fields and the shared ones, strict, within the variant limits.
export const batchItemInput = z.discriminatedUnion(
  'operation',
  [
    z.object({ ...generationOptions, ...operationFields['text-to-image'] }).strict().refine(variantCountWithinLimit, tooManyVariants),
    z.object({ ...generationOptions, ...operationFields.edit }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields.upscale }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields['remove-background'] }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields['image-to-image'] }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields.optimize }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
  ],
  { error: operationError },
);

export const generateInput = z.discriminatedUnion(
  'operation',
  [
    z.object({ ...generationOptions, ...operationFields['text-to-image'], ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants),
    z.object({ ...generationOptions, ...operationFields.edit, ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields.upscale, ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields['remove-background'], ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields['image-to-image'], ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
    z.object({ ...generationOptions, ...operationFields.optimize, ...keyed }).strict().refine(variantCountWithinLimit, tooManyVariants).superRefine(oneImageInput),
  ],
  { error: operationError },
);

export const batchInput = z
  .object({
    /** The subject of every item that names none. */
    subject: subject.optional(),
    items: z
      .array(batchItemInput)
      .min(1, 'a batch needs at least one item')
      .max(LIMITS.batchItems, `a batch holds at most ${LIMITS.batchItems} items; split it`),
    idempotencyKey: idempotencyKey.optional(),
  })
  .strict();

const uuid = (what: string) => z.uuid({ error: `${what} must be a generation UUID as returned by generate` });

export const idInput = z.object({ id: uuid('id') }).strict();
export const batchIdInput = z.object({ batchId: z.uuid({ error: 'batchId must be a UUID as returned by batch' }) }).strict();

export const listInput = z
  .object({
    states: z.array(z.enum(GENERATION_STATES)).max(GENERATION_STATES.length).optional(),
    batchId: z.uuid().optional(),
    /** Only the generations for this subject. */
    subject: subject.optional(),
    model: z.enum(MODEL_IDS).optional(),
    createdAfter: z.iso.datetime({ offset: true }).optional(),
    createdBefore: z.iso.datetime({ offset: true }).optional(),
    limit: z.int().min(1).max(LIMITS.listPageSize, `limit must be between 1 and ${LIMITS.listPageSize}`).default(20),
    /** `nextCursor` from the previous page. */
    cursor: z.uuid({ error: 'cursor is not valid; pass nextCursor from the previous page' }).optional(),
  })
  .strict()
  .default({ limit: 20 });

export const onUpdateInput = z
  .object({
    /** Events of one generation (its whole history first), … */
    generationId: z.uuid({ error: 'generationId must be a generation UUID as returned by generate' }).optional(),
    /** … or of one batch, with its running counts; neither: all of the caller's, from now. */
    batchId: z.uuid({ error: 'batchId must be a UUID as returned by batch' }).optional(),
    /** Resume after this event (the client sends it by itself when it reconnects). */
    lastEventId: z.string().max(64).nullish(),
  })
  .strict()
  .refine((input) => !(input.generationId && input.batchId), { message: 'give generationId or batchId, not both', path: ['batchId'] })
  .default({});

export const createTokenInput = z
  .object({
    generationId: z.uuid({ error: 'generationId must be a generation UUID as returned by generate' }).optional(),
    batchId: z.uuid({ error: 'batchId must be a UUID as returned by batch' }).optional(),
    /** How long the token works; 15 minutes by default, a day at most. */
    ttlSeconds: z.int().min(10).max(86_400, 'ttlSeconds must be between 10 and 86400').default(900),
  })
  .strict()
  .refine((input) => Boolean(input.generationId) !== Boolean(input.batchId), { message: 'give exactly one of generationId or batchId', path: ['generationId'] });

export const creditsInput = z
  .object({ days: z.int({ error: 'days must be a whole number' }).min(1, 'days must be between 1 and 90').max(90, 'days must be between 1 and 90').default(30) })
  .strict()
  .default({ days: 30 });

const tenantName = z
  .string({ error: 'tenant must be a string' })
  .trim()
  .min(1, 'tenant must not be empty')
  .max(200, 'tenant must be at most 200 characters')
  .refine((value) => !/\p{Cc}/u.test(value), 'tenant must not contain control characters')
  .refine(...wellFormed('tenant'));

export const adminCreateKeyInput = z
  .object({
    /** The tenant's name; a new name creates the tenant. */
    tenant: tenantName,
    /** A label for people reading `admin.keys.list`. */
    name: z.string().trim().min(1).max(200, 'name must be at most 200 characters').refine(...withoutNul('name')).refine(...wellFormed('name')).optional(),
    tier: z.enum(TENANT_TIERS, { error: `tier must be one of: ${TENANT_TIERS.join(', ')}` }).optional(),
    shareBy: z.enum(SHARE_BY, { error: `shareBy must be one of: ${SHARE_BY.join(', ')}` }).optional(),
  })
  .strict();

const positiveOrNull = (field: string, integer: boolean) =>
  (integer ? z.int({ error: `${field} must be a whole number` }) : z.number({ error: `${field} must be a number` }))
    .positive(`${field} must be above 0`)
    .max(1e9, `${field} must be at most 1000000000`)
    .nullable()
    .optional();

/** One allowed source host, stored normalised (see jobs/sources/host-allowlist.ts). */
const sourceHost = z.string({ error: 'a source host must be a string' }).max(260, 'a source host is at most 253 characters').transform((entry, ctx) => {
  const pattern = normalizeHostPattern(entry);
  if (pattern !== undefined) return pattern;
  ctx.addIssue({ code: 'custom', message: `"${entry}" is not a host: give a name like cdn.shop.example, *.shop.example for every host below it, or an IP address (no scheme, port or path)` });
  return z.NEVER;
});

export const adminSetTenantInput = z
  .object({
    tenant: tenantName,
    tier: z.enum(TENANT_TIERS, { error: `tier must be one of: ${TENANT_TIERS.join(', ')}` }).optional(),
    shareBy: z.enum(SHARE_BY, { error: `shareBy must be one of: ${SHARE_BY.join(', ')}` }).optional(),
    inProgressCap: positiveOrNull('inProgressCap', true),
    requestsPerMinute: positiveOrNull('requestsPerMinute', false),
    requestBurst: positiveOrNull('requestBurst', true),
    subjectRequestsPerMinute: positiveOrNull('subjectRequestsPerMinute', false),
    subjectRequestBurst: positiveOrNull('subjectRequestBurst', true),
    /** Replaces the tenant's allowed source hosts; null or []: none (URL sources off). */
    sourceHosts: z
      .array(sourceHost)
      .max(LIMITS.sourceHosts, `at most ${LIMITS.sourceHosts} source hosts`)
      .transform((hosts) => [...new Set(hosts)])
      .nullable()
      .optional(),
  })
  .strict();

export const adminGrantInput = z
  .object({
    tenant: tenantName,
    usd: z.number({ error: 'usd must be a number of US dollars' }).positive('usd must be above 0').max(1_000_000, 'usd must be at most 1000000 at once'),
    note: z.string().trim().min(1).max(500, 'note must be at most 500 characters').refine(...withoutNul('note')).refine(...wellFormed('note')).optional(),
  })
  .strict();

export const adminListKeysInput = z.object({ tenant: tenantName.optional() }).strict().default({});

export const adminRevokeKeyInput = z
  .object({ key: z.string().trim().min(1, 'key must name a key id or prefix').max(100).refine(...wellFormed('key')) })
  .strict();

const sourceFilename = shortName('filename', {
  maxCharacters: LIMITS.sourceFilenameLength,
  notText: 'filename must be text',
  controlCharacters: 'filename must not contain control characters',
});

/**
 * An upload is multipart/form-data (tRPC hands the procedure a FormData): the image in a `file`
 * part, and optionally its `filename`. The client-sdk's `sources.upload` builds it.
 */
export const uploadSourceInput = z
  .instanceof(FormData, { error: 'send the image as multipart/form-data with a "file" part (the client-sdk\'s sources.upload does)' })
  .transform((form): { file?: unknown; filename?: unknown } => ({ file: form.get('file') ?? undefined, filename: form.get('filename') ?? undefined }))
  .pipe(
    z.object({
      file: z.instanceof(Blob, { error: 'file must be a file part of the form (the image), not a text field' }),
      filename: sourceFilename.optional(),
    }),
  );

export const sourceFromUrlInput = z
  .object({
    url: z
      .string({ error: 'url must be a string' })
      .trim()
      .min(1, 'url must not be empty')
      .max(LIMITS.sourceUrlLength, `url must be at most ${LIMITS.sourceUrlLength} characters`)
      .refine(...wellFormed('url')),
  })
  .strict();

export const sourceIdInput = z.object({ id: z.uuid({ error: 'id must be a source UUID as returned by sources.upload or sources.fromUrl' }) }).strict();

/**
 * Each schema outputs exactly the input type its service is declared with (api-types.ts), and
 * the states there are the database's. A schema change that alters what a service receives
 * fails to compile here until the contract says the same.
 */
type SchemasMatchTheContract = [
  Expect<Equal<z.output<typeof generateInput>, api.GenerateInput>>,
  Expect<Equal<z.output<typeof batchItemInput>, api.BatchItemInput>>,
  Expect<Equal<z.output<typeof batchInput>, api.BatchInput>>,
  Expect<Equal<z.output<typeof listInput>, api.ListInput>>,
  Expect<Equal<z.output<typeof onUpdateInput>, api.WatchInput>>,
  Expect<Equal<z.output<typeof createTokenInput>, api.CreateTokenInput>>,
  Expect<Equal<z.output<typeof creditsInput>, api.CreditsInput>>,
  Expect<Equal<z.output<typeof adminCreateKeyInput>, api.AdminCreateKeyInput>>,
  Expect<Equal<z.output<typeof adminListKeysInput>, api.AdminListKeysInput>>,
  Expect<Equal<z.output<typeof adminSetTenantInput>, api.AdminSetTenantInput>>,
  Expect<Equal<z.output<typeof adminGrantInput>, api.AdminGrantInput>>,
  Expect<Equal<z.output<typeof adminRevokeKeyInput>, api.AdminRevokeKeyInput>>,
  Expect<Equal<z.output<typeof idInput>, { id: string }>>,
  Expect<Equal<(typeof CATALOGUE_BACKGROUNDS)[number], api.CatalogueBackground>>,
  Expect<Equal<z.output<typeof batchIdInput>, { batchId: string }>>,
  Expect<Equal<(typeof GENERATION_STATES)[number], api.GenerationState>>,
  Expect<Equal<(typeof CACHE_MODES)[number], api.CacheMode>>,
  Expect<Equal<(typeof SERVED_FROM_KINDS)[number], api.ServedFrom['kind']>>,
  Expect<Equal<z.output<typeof uploadSourceInput>, api.UploadSourceInput>>,
  Expect<Equal<z.output<typeof sourceFromUrlInput>, api.SourceFromUrlInput>>,
  Expect<Equal<z.output<typeof sourceIdInput>, { id: string }>>,
  Expect<Equal<(typeof SOURCE_FORMATS)[number], api.SourceFormat>>,
  Expect<Equal<(typeof SOURCE_ORIGINS)[number], api.SourceOrigin>>,
  Expect<Equal<(typeof OPERATIONS)[number], api.Operation>>,
];
