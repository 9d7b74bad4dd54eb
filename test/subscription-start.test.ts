// A subscription the server never acknowledges (sent as an idle WebSocket closed, or lost on the
// way) is made again by the client-sdk after its start timeout, so waitFor and watch never hang.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createKilnClient } from '../client-sdk/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

/** Passes HTTP and WebSocket traffic to Kiln, except the first subscription message, which it drops. */
async function startDroppingProxy(target: URL) {
  let dropped = 0;
  const sockets = new WebSocketServer({ noServer: true });
  const server = http.createServer((req, res) => {
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    sockets.handleUpgrade(req, socket, head, (client) => {
      const upstream = new WebSocket(`ws://${target.host}${req.url ?? '/'}`);
      const early: RawData[] = [];
      client.on('message', (data) => {
        const text = data.toString();
        if (dropped === 0 && text.includes('"subscription"')) {
          dropped += 1;
          return;
        }
        if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
        else early.push(data);
      });
      upstream.on('open', () => {
        for (const data of early.splice(0)) upstream.send(data.toString());
      });
      upstream.on('message', (data) => client.send(data.toString()));
      upstream.on('close', () => client.close());
      client.on('close', () => upstream.close());
      upstream.on('error', () => client.close());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropped: () => dropped,
    close: async () => {
      for (const client of sockets.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a subscription that never starts', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('is made again after the start timeout, and waitFor still resolves with every event', async () => {
    const proxy = await startDroppingProxy(new URL(kiln.url));
    const client = createKilnClient({ url: proxy.url, apiKey: kiln.apiKey, subscriptionStartTimeoutMs: 500 });
    try {
      const { id } = await client.generate({ prompt: 'heard the second time', platforms: ['thumbnail'] });
      const done = await client.waitFor(id, { timeoutMs: 30_000 });
      assert.equal(done.state, 'succeeded');
      assert.equal(proxy.dropped(), 1, 'the first subscription was lost on the way');
    } finally {
      client.close();
      await proxy.close();
    }
  });
});
