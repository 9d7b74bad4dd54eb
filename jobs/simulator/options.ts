import { z } from 'zod';
import { defaultBurst } from './rate-limit.ts';
import { DEFAULT_WEBHOOK_RETRY_DELAYS_MS } from './webhooks.ts';

export interface SimulatorOptions {
  /** Interface to bind; default '127.0.0.1'. The /_sim admin routes have no auth, so keep loopback unless trusted. */
  host?: string;
  /** Default 0: a random free port. */
  port?: number;
  /** Base of the absolute URLs in responses (outputs, urls.*); default http://{host}:{port}. Set it behind Docker/NAT. */
  publicUrl?: string;
  /** If set, /v1 requires `Authorization: Bearer <token>` (or `Token <token>`, which Replicate also accepts). */
  apiToken?: string;
  /** Time a prediction spends in `processing` (its predict_time), drawn uniformly per prediction. Default 300..1200. */
  latencyMs?: { min: number; max: number };
  /** Time spent in `starting` before `processing`. Default 100. */
  queueDelayMs?: number;
  /** 0..1, fraction of predictions that end `failed` with a model error. Default 0. */
  failureRate?: number;
  /** Create calls per minute (Replicate: 600). */
  createsPerMinute?: number;
  /** All other /v1 calls together per minute (Replicate: 3000). */
  readsPerMinute?: number;
  /**
   * Token-bucket size for both limits. Default: ten seconds' worth of each rate (100 creates,
   * 500 reads at Replicate's limits) — Replicate tolerates "short bursts" without saying how long.
   */
  burst?: number;
  /** Add `Retry-After: N` to 429s. Default false: Replicate documents none. */
  retryAfterHeader?: boolean;
  /** 'whsec_<base64>'; generated when unset (read it back from simulator.webhookSecret). */
  webhookSecret?: string;
  /** Delays between tries of the `completed` webhook. Default 1,2,4,8,15,30 s (last try ≈ 1 min after completion). */
  webhookRetryDelaysMs?: number[];
  /** Per-attempt webhook timeout. Default 10 s. */
  webhookTimeoutMs?: number;
  /** Output files (and data_removed) after completion. Default 1 hour, like Replicate's API predictions. */
  outputRetentionMs?: number;
  /** When finished predictions are forgotten entirely (GET → 404). Default 2 × outputRetentionMs. */
  predictionRetentionMs?: number;
  /** Edge of a 1:1 flux image. Default 1024. */
  imageSize?: number;
  /** Page size of GET /v1/predictions. Default 100, like Replicate. */
  listPageSize?: number;
  /** Deployment "owner/name" → model ("owner/name" or "owner/name:version"). Unlisted deployments named like a known model run it. */
  deployments?: Record<string, string>;
  /** Request body limit; larger bodies get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Randomness for latency, failure and seed draws. Default Math.random. */
  random?: () => number;
}

export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly publicUrl: string | null;
  readonly apiToken: string | null;
  readonly latencyMs: { min: number; max: number };
  readonly queueDelayMs: number;
  readonly failureRate: number;
  readonly createsPerMinute: number;
  readonly readsPerMinute: number;
  readonly createBurst: number;
  readonly readBurst: number;
  readonly retryAfterHeader: boolean;
  readonly webhookSecret: string | null;
  readonly webhookRetryDelaysMs: readonly number[];
  readonly webhookTimeoutMs: number;
  readonly outputRetentionMs: number;
  readonly predictionRetentionMs: number;
  readonly imageSize: number;
  readonly listPageSize: number;
  readonly deployments: Readonly<Record<string, string>>;
  readonly maxBodyBytes: number;
  readonly random: () => number;
}

const HOUR_MS = 3_600_000;

const optionsSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(0),
  publicUrl: z.url().optional(),
  apiToken: z.string().min(1).optional(),
  latencyMs: z
    .object({ min: z.number().min(0), max: z.number().min(0) })
    .refine((l) => l.max >= l.min, { message: 'latencyMs.max must be >= latencyMs.min' })
    .default({ min: 300, max: 1200 }),
  queueDelayMs: z.number().min(0).default(100),
  failureRate: z.number().min(0).max(1).default(0),
  createsPerMinute: z.number().positive().default(600),
  readsPerMinute: z.number().positive().default(3000),
  burst: z.number().int().min(1).optional(),
  retryAfterHeader: z.boolean().default(false),
  webhookSecret: z.string().startsWith('whsec_').optional(),
  webhookRetryDelaysMs: z.array(z.number().min(0)).default([...DEFAULT_WEBHOOK_RETRY_DELAYS_MS]),
  webhookTimeoutMs: z.number().positive().default(10_000),
  outputRetentionMs: z.number().positive().default(HOUR_MS),
  predictionRetentionMs: z.number().positive().optional(),
  imageSize: z.number().int().min(64).max(4096).default(1024),
  listPageSize: z.number().int().min(1).max(1000).default(100),
  deployments: z.record(z.string(), z.string()).default({}),
  maxBodyBytes: z.number().int().positive().default(1024 * 1024),
});

export function resolveOptions(options: SimulatorOptions = {}): ResolvedOptions {
  const { random, ...rest } = options;
  const parsed = optionsSchema.safeParse(rest);
  if (!parsed.success) throw new Error(`Invalid simulator options:\n${z.prettifyError(parsed.error)}`);
  const o = parsed.data;
  return {
    host: o.host,
    port: o.port,
    publicUrl: o.publicUrl?.replace(/\/+$/, '') ?? null,
    apiToken: o.apiToken ?? null,
    latencyMs: o.latencyMs,
    queueDelayMs: o.queueDelayMs,
    failureRate: o.failureRate,
    createsPerMinute: o.createsPerMinute,
    readsPerMinute: o.readsPerMinute,
    createBurst: o.burst ?? defaultBurst(o.createsPerMinute),
    readBurst: o.burst ?? defaultBurst(o.readsPerMinute),
    retryAfterHeader: o.retryAfterHeader,
    webhookSecret: o.webhookSecret ?? null,
    webhookRetryDelaysMs: o.webhookRetryDelaysMs,
    webhookTimeoutMs: o.webhookTimeoutMs,
    outputRetentionMs: o.outputRetentionMs,
    predictionRetentionMs: Math.max(o.predictionRetentionMs ?? 2 * o.outputRetentionMs, o.outputRetentionMs),
    imageSize: o.imageSize,
    listPageSize: o.listPageSize,
    deployments: o.deployments,
    maxBodyBytes: o.maxBodyBytes,
    random: random ?? Math.random,
  };
}
