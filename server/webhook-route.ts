// POST /webhooks/replicate: the provider reporting on a prediction. The raw body is verified
// with the Standard Webhooks scheme Replicate uses (HMAC-SHA256 over id.timestamp.body with the
// whsec_ secret, constant-time compare, 5-minute timestamp tolerance) before anything is read
// from it. Each webhook-id is handled once; what the news means is decided by the same code as
// a poll's (jobs/phases/prediction-updates.ts), which never moves a final state.
import type http from 'node:http';
import type { Kysely } from 'kysely';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { pruneWebhookDeliveries, recordWebhookDelivery, seenWebhookDelivery } from '../db/provider-work.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../jobs/logger.ts';
import type { PredictionUpdates } from '../jobs/phases/prediction-updates.ts';
import { toPrediction } from '../jobs/provider/replicate-provider.ts';
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import { DATABASE_RETRY_AFTER_SECONDS } from './errors.ts';
import { readBody, sendJson } from './http-server.ts';

export interface WebhookRouteOptions {
  db: Kysely<Database>;
  updates: PredictionUpdates;
  secret: () => Promise<string>;
  logger: Logger;
  /** Adds the ids a webhook names (generation, prediction) to its request's log line. */
  annotate?: (req: http.IncomingMessage, fields: { generationId: string; predictionId: string; outcome?: string }) => void;
  /** From Kiln's config, each with its reason there. */
  settings: { maxBodyBytes: number; maxDrainBytes: number; keepDeliveriesSeconds: number; pruneEveryMs: number; secretRetryMs: number };
}

const GENERATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function createWebhookRoute(options: WebhookRouteOptions): http.RequestListener {
  const { db, logger, settings } = options;
  let prunedAt = 0;
  // The secret may come from the provider: asked once at a time, and not again for a while after
  // a failure, so requests (signed or not) cannot turn into a stream of provider calls.
  let verifier: Promise<Webhook> | undefined;
  let verifierFailedAt = -Infinity;
  const getVerifier = (): Promise<Webhook> => {
    if (!verifier && performance.now() - verifierFailedAt < settings.secretRetryMs) return Promise.reject(new Error('the webhook secret is not available yet'));
    verifier ??= options.secret().then(
      (secret) => new Webhook(secret),
      (error: unknown) => {
        verifier = undefined;
        verifierFailedAt = performance.now();
        throw error;
      },
    );
    return verifier;
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    const headers = { 'webhook-id': header(req, 'webhook-id'), 'webhook-timestamp': header(req, 'webhook-timestamp'), 'webhook-signature': header(req, 'webhook-signature') };
    if (!headers['webhook-id'] || !headers['webhook-timestamp'] || !headers['webhook-signature']) return sendJson(res, 401, { error: 'missing webhook signature headers' });
    // Far too large by its own account: refuse without reading (the connection is closed).
    if (Number(req.headers['content-length'] ?? 0) > settings.maxDrainBytes) return sendJson(res, 413, { error: `body over ${settings.maxBodyBytes} bytes` }, { close: true });
    const bytes = await readBody(req, settings.maxBodyBytes);
    const body = bytes?.toString('utf8');
    if (body === undefined) return sendJson(res, 413, { error: `body over ${settings.maxBodyBytes} bytes` });
    let payload: unknown;
    try {
      payload = (await getVerifier()).verify(body, headers);
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error; // no secret yet: 500, the provider retries
      logger.warn('webhook rejected', { reason: error.message });
      return sendJson(res, 401, { error: 'invalid webhook signature' });
    }
    const webhookId = headers['webhook-id'];
    if (await seenWebhookDelivery(db, webhookId)) return sendJson(res, 200, { ok: true, duplicate: true });

    const generationId = new URL(req.url ?? '/', 'http://kiln').searchParams.get('tag') ?? '';
    if (!GENERATION_ID.test(generationId)) {
      // Signed by the provider but not tagged by us: nothing to do, and nothing to retry.
      return sendJson(res, 200, { ok: true, ignored: 'no generation tag' });
    }
    let prediction;
    try {
      prediction = toPrediction(payload);
    } catch {
      return sendJson(res, 400, { error: 'the body is not a prediction' });
    }
    options.annotate?.(req, { generationId, predictionId: prediction.id });
    const outcome = await options.updates.apply({ generationId, prediction });
    options.annotate?.(req, { generationId, predictionId: prediction.id, outcome });
    // Faster than our create call's answer: not handled, so ask for it again (Replicate retries
    // the final webhook; a poll covers the rest).
    if (outcome === 'early') return sendJson(res, 503, { error: 'the prediction is not known here yet; retry' });
    // Recorded once handled: a delivery that failed halfway is retried by the provider and redone.
    await recordWebhookDelivery(db, webhookId);
    if (Date.now() - prunedAt > settings.pruneEveryMs) {
      prunedAt = Date.now();
      await pruneWebhookDeliveries(db, settings.keepDeliveriesSeconds);
    }
    sendJson(res, 200, { ok: true, outcome });
  }

  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The database is away: the provider keeps the webhook and sends it again (polls cover the rest).
      if (isDatabaseUnavailable(error)) {
        if (!res.headersSent) sendJson(res, 503, { error: 'database unavailable, retry in a moment' }, { retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS });
        return;
      }
      logger.error('webhook handling failed', { error: error instanceof Error ? error.message : String(error) });
      // 5xx: the provider retries the final webhook; polls are the backstop for the rest.
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    });
  };
}

function header(req: http.IncomingMessage, name: string): string {
  const value = req.headers[name];
  return typeof value === 'string' ? value : '';
}

