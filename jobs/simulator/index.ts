import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleAdmin, isAdminPath } from './admin-routes.ts';
import { handleApi } from './api.ts';
import type { SimulatorContext } from './context.ts';
import { FaultState, type FaultControls } from './faults.ts';
import { FileStore } from './file-store.ts';
import { newApiToken } from './ids.ts';
import { canWrite, sendJson } from './http.ts';
import { internalError, NOT_FOUND, sendProblem } from './problems.ts';
import { resolveOptions, type SimulatorOptions } from './options.ts';
import { PredictionEngine } from './predictions.ts';
import { handlePublic, isPublicPath } from './public-routes.ts';
import { TokenBucket } from './rate-limit.ts';
import { RenderCache } from './render-cache.ts';
import { StatsCounters, type SimulatorStats } from './stats.ts';
import { TimerRegistry } from './timers.ts';
import { generateWebhookSecret, WebhookSender } from './webhooks.ts';

// A Replicate-compatible HTTP server for offline development, demos and load tests. The official
// `replicate` client works against it unchanged with `baseUrl: simulator.url + '/v1'`.
// See README.md in this folder for the API subset, prompt directives and fault injection.

export type { SimulatorOptions } from './options.ts';
export type { FaultControls, FaultSettings, FaultSnapshot } from './faults.ts';
export type { SimulatorStats, PredictionStatus } from './stats.ts';
export type { PredictionJson } from './predictions.ts';
export { signWebhook, decodeWebhookSecret } from './webhooks.ts';
export { KNOWN_MODELS } from './models.ts';

export interface Simulator {
  /** e.g. http://127.0.0.1:43123 — the base of the /v1 API, files and /_sim admin. Throws before start(). */
  readonly url: string;
  /** The token /v1 requires (given in options or generated). */
  readonly apiToken: string;
  /** 'whsec_…' used to sign webhooks (given in options or generated). */
  readonly webhookSecret: string;
  start(): Promise<void>;
  /** Closes the server, open connections and every timer; pending webhooks are abandoned. Cannot be restarted. */
  stop(): Promise<void>;
  readonly faults: FaultControls;
  stats(): SimulatorStats;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

async function dispatch(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://simulator.invalid');
    if (url.pathname === '/v1' || url.pathname.startsWith('/v1/')) await handleApi(ctx, req, res, url);
    else if (isPublicPath(url.pathname)) await handlePublic(ctx, req, res, url);
    else if (isAdminPath(url.pathname)) await handleAdmin(ctx, req, res, url);
    else if (url.pathname === '/') sendJson(res, 200, { name: 'kiln replicate simulator', api: `${ctx.baseUrl()}/v1` });
    else sendProblem(res, NOT_FOUND);
  } catch (error) {
    // A bug in a handler answers 500 instead of taking the process down.
    if (canWrite(res)) sendProblem(res, internalError(`Simulator error: ${error instanceof Error ? error.message : String(error)}`));
  }
}

export function createSimulator(options: SimulatorOptions = {}): Simulator {
  const resolved = resolveOptions(options);
  const apiToken = resolved.apiToken ?? newApiToken();
  const webhookSecret = resolved.webhookSecret ?? generateWebhookSecret();
  const timers = new TimerRegistry();
  const stats = new StatsCounters();
  const faults = new FaultState({ failureRate: resolved.failureRate, latencyMs: resolved.latencyMs });
  let listeningUrl: string | null = null;
  let state: 'new' | 'started' | 'stopped' = 'new';

  const baseUrl = (): string => {
    if (resolved.publicUrl !== null) return resolved.publicUrl;
    if (listeningUrl === null) throw new Error('Simulator not started');
    return listeningUrl;
  };

  const webhooks = new WebhookSender({
    secret: webhookSecret,
    retryDelaysMs: resolved.webhookRetryDelaysMs,
    timeoutMs: resolved.webhookTimeoutMs,
    timers,
    isDropped: () => faults.dropWebhooks,
    onAttempt: (outcome) => {
      if (outcome === 'sent') stats.webhooksSent++;
      else if (outcome === 'failed') stats.webhooksFailed++;
      else stats.webhooksDropped++;
    },
  });

  const engine = new PredictionEngine({
    timers,
    random: resolved.random,
    queueDelayMs: resolved.queueDelayMs,
    outputRetentionMs: resolved.outputRetentionMs,
    predictionRetentionMs: resolved.predictionRetentionMs,
    faults,
    stats,
    webhooks,
    baseUrl,
  });

  const files = new FileStore({ retentionMs: resolved.fileRetentionMs, bytesDir: null });

  const ctx: SimulatorContext = {
    options: resolved,
    apiToken,
    webhookSecret,
    engine,
    files,
    faults,
    stats,
    timers,
    buckets: {
      creates: new TokenBucket(resolved.createsPerMinute, resolved.createBurst),
      reads: new TokenBucket(resolved.readsPerMinute, resolved.readBurst),
    },
    renders: new RenderCache(),
    baseUrl,
  };

  const server = createServer((req, res) => void dispatch(ctx, req, res));

  return {
    get url(): string {
      return baseUrl();
    },
    apiToken,
    webhookSecret,
    faults,
    stats: () => stats.snapshot(engine.liveCounts()),

    async start(): Promise<void> {
      if (state !== 'new') throw new Error(`Simulator already ${state}`);
      state = 'started';
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(resolved.port, resolved.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const { port } = server.address() as AddressInfo;
      listeningUrl = `http://${urlHost(resolved.host)}:${port}`;
      engine.startPruning();
      timers.setInterval(() => void files.prune(), Math.min(60_000, Math.max(50, resolved.fileRetentionMs / 4)), { unref: true });
    },

    async stop(): Promise<void> {
      if (state === 'stopped') return;
      const wasListening = state === 'started';
      state = 'stopped';
      timers.stopAll();
      engine.stop();
      webhooks.stop();
      ctx.renders.clear();
      if (!wasListening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
