// What protects the server from its realtime clients: heartbeats find dead connections.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startKiln, type TestKiln } from './support/kiln.ts';

/** A bare tRPC WebSocket client: connection params, then one tenant-wide subscription. */
function rawSubscriber(url: string, apiKey: string): WebSocket {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/trpc?connectionParams=1`);
  socket.on('open', () => {
    socket.send(JSON.stringify({ method: 'connectionParams', data: { apiKey } }));
    socket.send(JSON.stringify({ id: 1, method: 'subscription', params: { path: 'onUpdate', input: {} } }));
  });
  return socket;
}

const closed = (socket: WebSocket) => new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

describe('realtime robustness', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_WS_PING_MS: '200', KILN_WS_PONG_WAIT_MS: '300' } });
  });
  after(() => kiln.stop());

  it('closes a connection that stops answering heartbeats, and keeps a live one', async () => {
    const silent = rawSubscriber(kiln.url, kiln.apiKey); // never answers the server's PING
    const started = Date.now();
    await closed(silent);
    assert.ok(Date.now() - started < 3_000, 'closed within ping + pong wait');

    // The client-sdk answers heartbeats: its subscription lives on through many of them.
    const events: string[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const event of kiln.client.watch({}, { signal: controller.signal })) events.push(event.stage);
    })();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const { id } = await kiln.client.generate({ prompt: 'still listening', platforms: ['thumbnail'] });
    await kiln.client.waitFor(id);
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    await watching;
    assert.ok(events.includes('succeeded'));
  });

});
