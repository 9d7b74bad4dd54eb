// The simulator behind a pass-through gateway, for tests that watch what reaches the provider:
// it counts Files API uploads and can refuse creates with a 429, as Replicate's rate limit does.
// The simulator names the gateway in every URL it hands out.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Simulator } from '../../jobs/simulator/index.ts';
import { freePort } from './ports.ts';
import { startSimulator } from './simulator.ts';

export interface ProviderGateway {
  url: string;
  sim: Simulator;
  /** POST /v1/files that reached the simulator. */
  uploads(): number;
  /** The next `count` creates are answered 429, as Replicate's rate limit answers. */
  refuseCreates(count: number): void;
  close(): Promise<void>;
}

export async function startProviderGateway(options: { fileRetentionMs?: number } = {}): Promise<ProviderGateway> {
  let uploads = 0;
  let refusals = 0;
  const simPort = await freePort();
  const server = http.createServer((req, res) => {
    const isCreate = req.method === 'POST' && /\/predictions$/.test(req.url ?? '');
    if (isCreate && refusals > 0) {
      refusals--;
      req.resume();
      return void res.writeHead(429, { 'content-type': 'application/json' }).end('{"detail":"Request was throttled. Your rate limit resets in ~1s."}');
    }
    if (req.method === 'POST' && req.url === '/v1/files') uploads++;
    const upstream = http.request({ host: '127.0.0.1', port: simPort, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sim = await startSimulator({ port: simPort, publicUrl: url, ...(options.fileRetentionMs === undefined ? {} : { fileRetentionMs: options.fileRetentionMs }) });
  return {
    url,
    sim,
    uploads: () => uploads,
    refuseCreates: (count) => void (refusals = count),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
