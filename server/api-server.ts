// The API process part: tRPC over HTTP and WebSocket on one port, /health, /ready, /metrics,
// /assets, and the event feed that pushes realtime events to this process's subscribers.
import http from 'node:http';
import path from 'node:path';
import type { Tracer } from '@opentelemetry/api';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import type { Kysely } from 'kysely';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../jobs/logger.ts';
import type { ProviderPolicies } from '../jobs/provider/policies.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { AssetStorage } from '../jobs/storage/storage.ts';
import { getOrCreateSecret } from '../db/secrets.ts';
import { bearerToken, createAuthenticator } from './auth.ts';
import type { KilnConfig } from './config.ts';
import { createAccountService } from './account-service.ts';
import { createTenantAdminService } from './tenant-admin-service.ts';
import { createRequestLimiter } from './request-limiter.ts';
import { createGenerationService } from './generation-service.ts';
import type { HealthChecks } from './health.ts';
import { createHttpServer } from './http-server.ts';
import { createStudioRoute } from './studio-route.ts';
import type { KilnMetrics } from './metrics/kiln-metrics.ts';
import { serveOpsRoute } from './ops-routes.ts';
import { createEventFeed } from './realtime/event-feed.ts';
import { createRealtimeService } from './realtime/realtime-service.ts';
import { createRealtimeEncoder } from './realtime/ws-encoder.ts';
import { createAppRouter } from './router.ts';
import { UPLOAD_PROCEDURES } from './trpc.ts';
import { createSourceService } from './source-service.ts';
import { DEVELOPMENT_KINDS } from '../jobs/sources/address-policy.ts';
import { createTokenSigner } from './scoped-tokens.ts';
import { createTokenService } from './token-service.ts';
import { createOpsService } from './ops-service.ts';
import type { ProviderRateLimiter } from '../jobs/provider/rate-limiter.ts';
import { createWebhookRoute } from './webhook-route.ts';
import { createPredictionUpdates } from '../jobs/phases/prediction-updates.ts';
import type { AuthResult, Context } from './context.ts';
import type { KilnServices } from './services.ts';
import { DomainError } from './errors.ts';
import { createKeyService } from './key-service.ts';
import { createOperatorCheck } from './operator.ts';
import { trackSocketConnection } from './socket-connection.ts';
import { createTrpcHttpEntry } from './trpc-http.ts';
import { createCallObserver } from './call-telemetry.ts';
import { createRequestLog } from './request-log.ts';

export interface ApiServerOptions {
  config: KilnConfig;
  db: Kysely<Database>;
  databaseUrl: string;
  queue: JobQueue;
  storage: AssetStorage;
  /** The provider's breaker, when this process also runs the worker. */
  policies: ProviderPolicies | undefined;
  /** The shared provider budgets (for the stats). */
  limiter: ProviderRateLimiter;
  /** The secret that signs the provider's webhooks. */
  webhookSecret: () => Promise<string>;
  /** /health and /ready. */
  health: HealthChecks;
  /** This app's registry (/metrics) and what the API reports to it. */
  metrics: KilnMetrics;
  logger: Logger;
  /** Spans of the API's calls (no-op unless an SDK is configured). */
  tracer: Tracer;
}

export interface ApiServer {
  url: string;
  stop(): Promise<void>;
}

export async function startApiServer({ config, db, databaseUrl, queue, storage, policies, limiter, webhookSecret, health, metrics, logger, tracer }: ApiServerOptions): Promise<ApiServer> {
  let publicUrl = config.publicUrl ?? '';
  const assetsBase = () => publicUrl;
  const sockets = new Set<Duplex>(); // the WebSocket connections' network sockets
  const { feedPageSize: pageSize, feedRetryMs: retryMs, feedHeldBackRetryMs: heldBackRetryMs, listenerReconnectMs } = config.realtime;
  const feed = createEventFeed({ db, connectionString: databaseUrl, publicUrl: assetsBase, logger, reads: { pageSize, retryMs, heldBackRetryMs, listenerReconnectMs }, batchWrites: (dispatch) => holdWritesThisTurn(sockets, dispatch) });
  await feed.start();
  const signer = createTokenSigner(config.tokenSecret ?? (await getOrCreateSecret(db, 'scoped-tokens')));
  const { agingSeconds, tierWeights, defaultWeight } = config.worker.dispatch;
  const estimates = { createsPerMinute: config.provider.creates.perMinute, tierWeights, defaultWeight };
  const { tiers, defaultLimit, pruneEveryMs } = config.api.requestLimits;
  const requestLimiter = createRequestLimiter(db, { tiers, defaultLimit, cacheMs: config.authCacheMs, maxCachedTenants: config.api.authCacheMaxEntries });
  const pruning = setInterval(() => {
    requestLimiter.prune().catch((error: unknown) => logger.warn('pruning request budgets failed; trying again later', { error: error instanceof Error ? error.message : String(error) }));
  }, pruneEveryMs);
  pruning.unref();
  const authenticator = createAuthenticator(db, signer, { cacheMs: config.authCacheMs, maxEntries: config.api.authCacheMaxEntries });
  const services: KilnServices = {
    generations: createGenerationService({
      db, queue, publicUrl: assetsBase, defaultDeadlineSeconds: config.worker.deadlineSeconds, groupCommit: config.api.groupCommit,
      estimates, priorityAgingSeconds: agingSeconds, requestLimiter, idempotencyKeySeconds: config.api.idempotencyKeySeconds, cachePriceShare: config.api.cache.priceShare,
      optimizer: { targetShortEdge: config.optimizer.targetShortEdge, maxPixels: config.limits.maxInputPixels },
      onQueued: metrics.api.generationsQueued,
    }),
    realtime: createRealtimeService({ db, feed, publicUrl: assetsBase, maxBuffered: config.realtime.maxBufferedEvents,
      maxSocketBufferBytes: config.realtime.maxSocketBufferBytes,
      queueUpdateMs: config.realtime.queueUpdateMs, estimates }),
    tokens: createTokenService({ db, signer }),
    ops: createOpsService({ db, limiter, policies }),
    accounts: createAccountService({ db }),
    // Revoked here: this process forgets the key at once (others within KILN_AUTH_CACHE_MS).
    keys: createKeyService({ db, onRevoked: (keyId) => authenticator.forget(keyId) }),
    tenants: createTenantAdminService({ db }),
    sources: createSourceService({
      db, storage, publicUrl: assetsBase, requestLimiter,
      limits: { maxBytes: config.sources.maxBytes, maxPixels: config.sources.maxPixels },
      fetch: config.sources.fetch,
      addresses: { alsoAllow: config.sources.allowPrivateAddresses ? DEVELOPMENT_KINDS : [] },
    }),
  };
  if (config.sources.allowPrivateAddresses) logger.warn('URL sources may reach loopback and private addresses (KILN_SOURCE_ALLOW_PRIVATE=true): for development only');
  const isOperator = createOperatorCheck(config.api.adminToken);
  const adminEnabled = config.api.adminToken !== undefined;
  // Uploads carry an image: their own body limit, the image limit with room for the form around it.
  const uploadBodyBytes = config.sources.maxBytes + config.sources.uploadOverheadBytes;
  const router = createAppRouter({
    isDev: config.isDev,
    maxUploadBodyBytes: uploadBodyBytes,
    maxCallsPerHttpRequest: config.api.maxCallsPerHttpRequest,
    maxMessagesPerFrame: config.realtime.maxMessagesPerFrame,
    credentialRecheckMs: config.api.credentialRecheckMs,
    onCall: metrics.api.trpcCall,
    observeCall: createCallObserver({ logger, tracer }),
  });
  const requests = createRequestLog({ logger, requestIdMaxLength: config.log.requestIdMaxLength, quietPaths: config.log.quietPaths });
  const missing = (): Promise<AuthResult> => Promise.resolve({ ok: false, reason: 'missing credentials' });
  /** A context's credential check: on every call, through the authenticator's short cache. */
  const contextFor = (credential: string | undefined, req: http.IncomingMessage): Omit<Context, 'connection'> => ({
    hasCredentials: credential !== undefined,
    isOperator: isOperator(credential),
    adminEnabled,
    authenticate: () => (credential ? authenticator.authenticate(credential) : missing()),
    services,
    request: requests.of(req),
  });
  const onError = ({ error, path, ctx }: { error: { code: string; message: string; cause?: Error | undefined }; path?: string | undefined; ctx?: Pick<Context, 'request' | 'connection'> | undefined }) => {
    // Over a WebSocket the context is the connection's: its call's own id is on the call's line.
    const ids = ctx ? (ctx.connection ? { connectionId: ctx.request.id } : { requestId: ctx.request.id }) : {};
    if (error.code === 'INTERNAL_SERVER_ERROR') logger.error('request failed', { ...ids, procedure: path, error: error.message, stack: error.cause?.stack });
  };

  const trpcHandlerWith = (maxBodySize: number) => createHTTPHandler({
    router,
    basePath: '/trpc/',
    maxBodySize,
    // HTTP batching must not become a way around the 1,000-item batch limit.
    maxBatchSize: config.api.maxCallsPerHttpRequest,
    createContext: ({ req }): Context => contextFor(bearerToken(req.headers.authorization), req),
    onError,
    // "Database unavailable" answers 503 (tRPC's status for SERVICE_UNAVAILABLE); Retry-After says when to try again.
    responseMeta: ({ errors }) => {
      const retryAfter = Math.max(0, ...errors.map((error) => (error.cause instanceof DomainError ? (error.cause.retryAfterSeconds ?? 0) : 0)));
      return retryAfter > 0 ? { headers: { 'Retry-After': String(retryAfter) } } : {};
    },
  });
  const trpcHandler = trpcHandlerWith(config.limits.maxBodyBytes);
  const uploadHandler = trpcHandlerWith(uploadBodyBytes);

  // At run time tRPC keeps every procedure under its dotted path ('ops.stats'); its type is the nested router.
  const procedures = router._def.procedures as unknown as Record<string, { _def: { type: string } } | undefined>;
  const trpc = createTrpcHttpEntry({
    handler: trpcHandler,
    basePath: '/trpc/',
    isSubscription: (path) => procedures[path]?._def.type === 'subscription',
    authenticate: (req) => {
      const credential = bearerToken(req.headers.authorization);
      return credential === undefined ? undefined : authenticator.authenticate(credential);
    },
    maxBodyBytes: config.limits.maxBodyBytes,
    uploads: { isUpload: (path) => UPLOAD_PROCEDURES.has(path), handler: uploadHandler, maxBodyBytes: uploadBodyBytes, maxDrainBytes: config.sources.uploadDrainBytes },
    logger,
  });

  const webhooks = createWebhookRoute({
    db,
    updates: createPredictionUpdates({ db, queue }),
    secret: webhookSecret,
    logger,
    annotate: requests.annotate,
    settings: config.api.webhooks,
  });
  const ops = (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => serveOpsRoute(req, res, pathname, { live: health.live, ready: health.ready, metrics, logger });
  // The Studio: the page at `/`, built into server/studio/dist by `npm run build`.
  const studio = createStudioRoute({ folder: path.join(import.meta.dirname, 'studio', 'dist'), assetOrigin: assetsBase });
  const server = createHttpServer({ trpc, webhooks, storage, ops, studio, observe: metrics.api.httpRequest, logger, timeouts: config.api.http, onRequest: requests.observe });

  // WebSocket on the same port. The API key comes in the connection parameters (never the
  // URL) and is verified on every call, as over HTTP: a revoked key or an expired token opens
  // nothing more on a socket that is already open.
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.realtime.maxMessageBytes });
  const { maxSubscriptionsPerConnection: maxSubscriptions, idleMs } = config.realtime;
  const connections = new WeakMap<WebSocket, ReturnType<typeof trackSocketConnection>>();
  server.on('upgrade', (req, socket, head) => {
    if (!new URL(req.url ?? '/', 'http://kiln').pathname.startsWith('/trpc')) return void socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(socket);
      metrics.api.websocketOpened();
      socket.once('close', () => {
        sockets.delete(socket);
        metrics.api.websocketClosed();
      });
      // From the start, before any message: a client that never sends its parameters is idle too.
      connections.set(ws, trackSocketConnection(ws, { maxSubscriptions, idleMs }));
      wss.emit('connection', ws, req);
    });
  });
  const websocket = applyWSSHandler({
    wss,
    router,
    // One frame is parsed and run at once: it must not carry more than a connection may hold.
    maxBatchSize: config.realtime.maxMessagesPerFrame,
    // Heartbeats: a connection quiet for pingMs is pinged and closed if no pong comes in time.
    keepAlive: { enabled: true, pingMs: config.realtime.pingMs, pongWaitMs: config.realtime.pongWaitMs },
    experimental_encoder: createRealtimeEncoder({ onEventSent: metrics.api.realtimeEventSent }),
    createContext: ({ req, res, info }): Context => {
      const params = info.connectionParams ?? {};
      const credential = [params.apiKey, params.token].find((value): value is string => typeof value === 'string' && value.length > 0);
      const context = contextFor(credential, req);
      context.authenticate().catch(() => {}); // warms the cache at once; a failure is reported by the call that meets it
      return { ...context, connection: connections.get(res) ?? trackSocketConnection(res, { maxSubscriptions, idleMs }) };
    },
    onError,
  });

  await listen(server, config.port, config.host);
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  if (!publicUrl) publicUrl = url;

  return {
    url,
    async stop() {
      clearInterval(pruning);
      // Tell WebSocket clients to reconnect (to another node, or to us after a restart).
      websocket.broadcastReconnectNotification();
      for (const client of wss.clients) client.close(1012, 'server restarting');
      wss.close();
      await feed.stop();
      await closeServer(server);
    },
  };
}

/**
 * Runs `write` with every socket corked and uncorks them once this turn of the event loop is
 * over (subscriptions send from promise callbacks, which all run before setImmediate), so the
 * frames one socket gets in a turn leave in one system call.
 */
function holdWritesThisTurn(sockets: Set<Duplex>, write: () => void): void {
  const held = [...sockets];
  for (const socket of held) socket.cork();
  try {
    write();
  } finally {
    setImmediate(() => {
      for (const socket of held) socket.uncork();
    });
  }
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stop accepting connections, let in-flight requests finish, drop idle keep-alive sockets. */
function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5_000).unref();
  });
}
