// One log line per HTTP request — method, path (never the query, which can carry a call's
// input), status, duration and request id — except for tRPC requests, whose calls each log a
// line of their own (call-telemetry.ts). Health, readiness and metrics are scraped every few
// seconds: their lines are at debug level unless they fail.
import type http from 'node:http';
import type { LogFields, Logger } from '../jobs/logger.ts';
import type { IncomingRequest } from './context.ts';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.ts';

export interface RequestLogOptions {
  logger: Logger;
  requestIdMaxLength: number;
  /** Paths whose answered requests are logged at debug level unless they fail (probes, scrapes). */
  quietPaths: readonly string[];
}

export interface RequestLog {
  /** Call first for every request: gives it its id (answered as x-request-id) and logs its line once it is answered. */
  observe(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** The request as observed; a WebSocket upgrade (which `observe` never sees) gets one made from its headers. */
  of(req: http.IncomingMessage): IncomingRequest;
  /** Ids its handler learnt (a webhook's generation and prediction): they join the request's line. */
  annotate(req: http.IncomingMessage, fields: LogFields): void;
}

export function createRequestLog(options: RequestLogOptions): RequestLog {
  const { logger } = options;
  const quiet = new Set(options.quietPaths);
  const requests = new WeakMap<http.IncomingMessage, IncomingRequest>();
  const annotations = new WeakMap<http.IncomingMessage, LogFields>();

  const describe = (req: http.IncomingMessage): IncomingRequest => {
    const traceparent = req.headers.traceparent;
    return { id: requestIdFrom(req.headers[REQUEST_ID_HEADER], options.requestIdMaxLength), traceparent: typeof traceparent === 'string' ? traceparent : undefined, calls: 0 };
  };

  return {
    observe(req, res) {
      const startedAt = performance.now();
      const request = describe(req);
      requests.set(req, request);
      res.setHeader(REQUEST_ID_HEADER, request.id);
      let logged = false;
      const done = () => {
        if (logged) return;
        logged = true;
        if (request.calls > 0) return; // each tRPC call logged its own line
        const url = req.url ?? '/';
        const query = url.indexOf('?');
        const path = query === -1 ? url : url.slice(0, query);
        const status = res.statusCode;
        const fields = {
          requestId: request.id,
          method: req.method,
          path,
          status,
          durationMs: Math.round((performance.now() - startedAt) * 10) / 10,
          ...annotations.get(req),
          ...(res.writableFinished ? {} : { aborted: true }),
        };
        if (status >= 500) logger.warn('request', fields);
        else if (quiet.has(path)) logger.debug('request', fields);
        else logger.info('request', fields);
      };
      res.once('finish', done);
      res.once('close', done);
    },
    of(req) {
      return requests.get(req) ?? describe(req);
    },
    annotate(req, fields) {
      annotations.set(req, { ...annotations.get(req), ...fields });
    },
  };
}
