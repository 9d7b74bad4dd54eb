// What protects the server from its realtime clients: heartbeats find dead connections, and a
// reader that stops reading is cut off (to resume later) instead of growing server memory.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { updateTenant } from '../db/tenants.ts';
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

describe('slow consumers', () => {
  let kiln: TestKiln;
  before(async () => {
    // API only: batches stay queued, so the flood is their 'queued' events, made in bulk.
    kiln = await startKiln({ env: { KILN_ROLE: 'api', KILN_REALTIME_MAX_SOCKET_BUFFER_BYTES: '65536' } });
    // The flood is 10,000 items in a moment: more than a tier's request limit allows.
    await updateTenant(kiln.app.database.db, kiln.tenantId, { requestsPerMinute: 1_000_000, requestBurst: 10_000 });
  });
  after(() => kiln.stop());

  it('cuts off a subscriber that stops reading, with a close reason it can act on', async () => {
    const slow = rawSubscriber(kiln.url, kiln.apiKey);
    await new Promise((resolve) => slow.once('open', resolve));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the subscription is registered
    const ending = closed(slow);
    const socket = (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause(); // stop reading: the server's send buffer is all that can grow
    for (let batch = 0; batch < 10; batch += 1) {
      await kiln.client.batch({ items: Array.from({ length: 1000 }, (_, index) => ({ prompt: `flood ${batch}.${index}` })) });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.resume();
    const { code, reason } = await ending;
    assert.equal(code, 4008);
    assert.match(reason, /slow consumer/);
  });
});
