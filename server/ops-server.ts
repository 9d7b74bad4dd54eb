// A worker-only process (KILN_ROLE=worker) has no API to carry /health, /ready and /metrics, so
// it serves them on a small HTTP port of its own (KILN_WORKER_PORT); nothing else is there.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../jobs/logger.ts';
import type { HealthChecks } from './health.ts';
import { observeRequest, routeOf, sendJson } from './http-server.ts';
import type { KilnMetrics } from './metrics/kiln-metrics.ts';
import { serveOpsRoute } from './ops-routes.ts';

export interface OpsServer {
  url: string;
  stop(): Promise<void>;
}

export interface OpsServerOptions {
  host: string;
  port: number;
  health: HealthChecks;
  metrics: KilnMetrics;
  logger: Logger;
  timeouts: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number };
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { health, metrics, logger } = options;
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://kiln');
    observeRequest(res, routeOf(pathname), metrics.api.httpRequest);
    if (!serveOpsRoute(req, res, pathname, { live: health.live, ready: health.ready, metrics, logger })) sendJson(res, 404, { error: 'not found' });
  });
  server.requestTimeout = options.timeouts.requestTimeoutMs;
  server.headersTimeout = options.timeouts.headersTimeoutMs;
  server.keepAliveTimeout = options.timeouts.keepAliveTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`KILN_WORKER_PORT ${options.port} is in use: give each worker process on a machine its own port (0 picks a free one)`, { cause: error })
          : error,
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // probes and scrapes only: nothing worth waiting for
      }),
  };
}
