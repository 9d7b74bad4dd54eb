// The operator's endpoints, served by the API's HTTP server and by a worker's own small one:
// /health, /ready (JSON; 200 or 503) and /metrics (Prometheus text format).
import type http from 'node:http';
import type { Logger } from '../jobs/logger.ts';
import type { HealthReport } from './health.ts';
import { sendJson } from './http-server.ts';
import type { KilnMetrics } from './metrics/kiln-metrics.ts';

export async function serveHealth(req: http.IncomingMessage, res: http.ServerResponse, check: () => HealthReport | Promise<HealthReport>, logger: Logger): Promise<void> {
  const report = await Promise.resolve()
    .then(check)
    .catch((error: unknown): HealthReport => {
      logger.error('health check failed', { error: error instanceof Error ? error.message : String(error) });
      return { status: 'degraded', checks: { health: { ok: false, detail: 'check failed' } } };
    });
  const { retryAfterSeconds, ...body } = report;
  sendJson(res, report.status === 'ok' ? 200 : 503, body, {
    headOnly: req.method === 'HEAD',
    noStore: true,
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  });
}

export async function serveMetrics(req: http.IncomingMessage, res: http.ServerResponse, metrics: Pick<KilnMetrics, 'expose'>, logger: Logger): Promise<void> {
  try {
    const { contentType, body } = await metrics.expose();
    res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (error) {
    logger.error('metrics exposition failed', { error: error instanceof Error ? error.message : String(error) });
    sendJson(res, 500, { error: 'metrics unavailable' });
  }
}

/** GET or HEAD of /health, /ready or /metrics: true when answered. */
export function serveOpsRoute(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  pathname: string,
  ops: { live: () => HealthReport; ready: () => Promise<HealthReport>; metrics: Pick<KilnMetrics, 'expose'>; logger: Logger },
): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (pathname === '/health') void serveHealth(req, res, ops.live, ops.logger);
  else if (pathname === '/ready') void serveHealth(req, res, ops.ready, ops.logger);
  else if (pathname === '/metrics') void serveMetrics(req, res, ops.metrics, ops.logger);
  else return false;
  return true;
}
