import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { SimulatorContext } from './context.ts';
import { faultSettingsSchema } from './faults.ts';
import { sendJson } from './http.ts';
import { readJsonBody } from './request-body.ts';

// /_sim: drive a simulator running in another process (load tests, demos).
//   GET  /_sim/stats   counters (SimulatorStats)
//   GET  /_sim/faults  current fault settings
//   POST /_sim/faults  JSON body shaped like FaultControls.set()'s input
//   POST /_sim/reset   clear faults, counters and rate-limit buckets
// No authentication: the simulator binds to loopback by default. Do not expose it.

export function isAdminPath(pathname: string): boolean {
  return pathname.startsWith('/_sim/');
}

export async function handleAdmin(ctx: SimulatorContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const key = `${req.method ?? 'GET'} ${url.pathname}`;
  switch (key) {
    case 'GET /_sim/stats':
      sendJson(res, 200, ctx.stats.snapshot(ctx.engine.liveCounts()));
      return;
    case 'GET /_sim/faults':
      sendJson(res, 200, ctx.faults.snapshot());
      return;
    case 'POST /_sim/faults': {
      const body = await readJsonBody(req, ctx.options.maxBodyBytes);
      if (!body.ok) {
        sendJson(res, body.problem.status, body.problem);
        return;
      }
      const parsed = faultSettingsSchema.safeParse(body.value ?? {});
      if (!parsed.success) {
        sendJson(res, 400, { detail: z.prettifyError(parsed.error), status: 400 });
        return;
      }
      ctx.faults.set(parsed.data);
      sendJson(res, 200, ctx.faults.snapshot());
      return;
    }
    case 'POST /_sim/reset':
      req.resume();
      ctx.faults.clear();
      ctx.stats.reset();
      ctx.buckets.creates.reset();
      ctx.buckets.reads.reset();
      sendJson(res, 200, { ok: true });
      return;
    default: {
      const known = ['/_sim/stats', '/_sim/faults', '/_sim/reset'].includes(url.pathname);
      sendJson(res, known ? 405 : 404, known ? { detail: `Method "${req.method ?? ''}" not allowed.`, status: 405 } : { detail: 'Not found.', status: 404 });
    }
  }
}
