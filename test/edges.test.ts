// The edges of the API: a WebSocket's own limits, subscriptions asked over plain HTTP, slow and
// half-open clients, and text that is not valid UTF-8 — each refused with a clear, typed answer,
// and none of it logged as an internal error.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { isError, isStarted, openRawSocket } from './support/raw-socket.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { createLogger } from '../server/logger.ts';

interface ErrorBody {
  error: { message: string; data: { code: string; httpStatus: number; path?: string; fields?: Record<string, string[]> } };
}

describe('edges', () => {
  let kiln: TestKiln;
  const errors: string[] = [];
  before(async () => {
    kiln = await startKiln({
      env: {
        KILN_ROLE: 'api',
        KILN_WS_MAX_SUBSCRIPTIONS: '3',
        KILN_WS_IDLE_MS: '400',
        KILN_HTTP_HEADERS_TIMEOUT_MS: '500',
        KILN_HTTP_REQUEST_TIMEOUT_MS: '800',
        KILN_HTTP_IDLE_TIMEOUT_MS: '800',
      },
      // Every line at error level is kept: hostile input must never show up as one.
      logger: createLogger({ level: 'error', write: (line) => errors.push(line) }),
    });
  });
  after(() => kiln.stop());

  it('limits the subscriptions one WebSocket holds, with a typed error, and frees a slot when one stops', async () => {
    const socket = await openRawSocket(kiln.url, { apiKey: kiln.apiKey });
    try {
      for (const id of [1, 2, 3]) socket.subscribe(id);
      for (const id of [1, 2, 3]) await socket.reply(id, isStarted);
      socket.subscribe(4);
      const refused = await socket.reply(4, isError('TOO_MANY_REQUESTS'));
      assert.match(refused.error?.message ?? '', /holds 3 subscriptions, the most one WebSocket may/);
      socket.stop(1);
      await socket.reply(1, (reply) => reply.result?.type === 'stopped');
      socket.subscribe(5);
      await socket.reply(5, isStarted);
    } finally {
      socket.close();
    }
  });

  it('refuses a frame carrying more messages than a connection may, answering each and opening none', async () => {
    const socket = await openRawSocket(kiln.url, { apiKey: kiln.apiKey });
    try {
      const ids = [11, 12, 13, 14, 15, 16, 17]; // twice the 3 subscriptions, plus one
      socket.send(ids.map((id) => ({ id, method: 'subscription', params: { path: 'onUpdate', input: {} } })));
      for (const id of ids) {
        const reply = await socket.reply(id, isError('BAD_REQUEST'));
        assert.match(reply.error?.message ?? '', / 6 in one WebSocket frame/);
      }
      // Nothing of that frame holds a slot: the connection still has all three.
      for (const id of [21, 22, 23]) socket.subscribe(id);
      for (const id of [21, 22, 23]) await socket.reply(id, isStarted);
    } finally {
      socket.close();
    }
  });

  it('closes a WebSocket that holds no subscription, and keeps one that does', async () => {
    const idle = await openRawSocket(kiln.url, { apiKey: kiln.apiKey });
    const busy = await openRawSocket(kiln.url, { apiKey: kiln.apiKey });
    busy.subscribe(1);
    await busy.reply(1, isStarted);
    const started = Date.now();
    const { code, reason } = await idle.closed;
    assert.equal(code, 1000);
    assert.match(reason, /idle/);
    assert.ok(Date.now() - started < 2_000);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(busy.socket.readyState, busy.socket.OPEN, 'a socket with a subscription is not idle');
    busy.close();
  });

  it('does not serve subscriptions over HTTP: 401 without a valid credential, 405 with one', async () => {
    const url = `${kiln.url}/trpc/onUpdate?input=${encodeURIComponent(JSON.stringify({}))}`;
    const asked = async (headers: Record<string, string>) => {
      const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers } });
      assert.doesNotMatch(response.headers.get('content-type') ?? '', /event-stream/);
      return { status: response.status, body: (await response.json()) as ErrorBody };
    };
    const anonymous = await asked({});
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error.data.code, 'UNAUTHORIZED');
    assert.match(anonymous.body.error.message, /missing API key/);
    assert.equal((await asked({ authorization: 'Bearer kiln_sk_wrong' })).status, 401);
    const keyed = await asked({ authorization: `Bearer ${kiln.apiKey}` });
    assert.equal(keyed.status, 405);
    assert.equal(keyed.body.error.data.code, 'METHOD_NOT_SUPPORTED');
    assert.match(keyed.body.error.message, /WebSocket only/);
  });

  it('lets go of a client that sends its headers too slowly, or its body', async () => {
    const lingering = async (request: string) => {
      const socket = net.connect(Number(new URL(kiln.url).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      const started = Date.now();
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      socket.write(request);
      await new Promise((resolve) => socket.once('close', resolve));
      return { afterMs: Date.now() - started, answer };
    };
    const headers = await lingering('GET /health HTTP/1.1\r\nHost: kiln\r\n'); // never ends its headers
    assert.ok(headers.afterMs < 2_500, `closed after ${headers.afterMs} ms`);
    const body = await lingering(
      `POST /trpc/generate HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nAuthorization: Bearer ${kiln.apiKey}\r\nContent-Length: 100\r\n\r\n{"prompt":`,
    );
    assert.ok(body.afterMs < 2_500, `closed after ${body.afterMs} ms`);
    assert.equal(await kiln.countGenerations(), 0, 'the half-sent request wrote nothing');
    const quiet = await lingering('GET /health HTTP/1.1\r\nHost: kiln\r\n\r\n'); // answered, then kept alive and silent
    assert.match(quiet.answer, /^HTTP\/1.1 200/);
    assert.ok(quiet.afterMs < 7_000, 'an idle kept-alive connection is closed');
  });

  it('refuses lone surrogates and invalid UTF-8 with the field\'s path, and accepts U+FFFD that was sent as such', async () => {
    const lone = await rejects(kiln.client.generate({ prompt: 'half a pair \ud83d' }), 'BAD_REQUEST', /prompt must be well-formed UTF-8 text/);
    assert.deepEqual(Object.keys(fieldsOf(lone)), ['prompt']);
    const batch = await rejects(kiln.client.batch({ items: [{ prompt: 'fine' }, { prompt: 'x', negativePrompt: '\udc00' }] }), 'BAD_REQUEST');
    assert.deepEqual(Object.keys(fieldsOf(batch)), ['items.1.negativePrompt']);

    const post = (path: string, body: Buffer) =>
      fetch(`${kiln.url}/trpc/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${kiln.apiKey}` }, body });
    const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));
    for (const invalid of [[0xff], [0xc3], [0xed, 0xa0, 0x80] /* an encoded surrogate */, [0xe0, 0x80, 0xaf] /* overlong */]) {
      const response = await post('generate', bytes('{"prompt":"caf', invalid, ' au lait"}'));
      assert.equal(response.status, 400);
      const body = (await response.json()) as ErrorBody;
      assert.deepEqual(Object.keys(body.error.data.fields ?? {}), ['prompt'], JSON.stringify(body));
      assert.match(body.error.message, /prompt must be well-formed UTF-8 text/);
    }
    const nested = await post('batch', bytes('{"items":[{"prompt":"ok"},{"prompt":"', [0xfe], '"}]}'));
    assert.deepEqual(Object.keys(((await nested.json()) as ErrorBody).error.data.fields ?? {}), ['items.1.prompt']);
    const escaped = await post('generate', bytes('{"prompt":"\\', [0xff], '"}')); // after a backslash, still refused
    assert.equal(escaped.status, 400);
    const outside = await post('generate', bytes('{"prompt":"ok"', [0xff], '}'));
    assert.match(((await outside.json()) as ErrorBody).error.message, /not valid JSON/);
    assert.equal(await kiln.countGenerations(), 0, 'nothing was written');

    const { id } = await kiln.client.generate({ prompt: 'a real replacement character: \ufffd' });
    assert.equal((await kiln.client.status({ id })).prompt, 'a real replacement character: \ufffd');
  });

  it('logs none of that hostile input as an internal error', async () => {
    const post = (path: string, body: string | Buffer, contentType = 'application/json') =>
      fetch(`${kiln.url}/trpc/${path}`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${kiln.apiKey}` }, body });
    await post('generate', '[[[[[[[[[['.repeat(20_000));
    await post('generate', '{"prompt": {"__proto__": {"x": 1}}}');
    await post('generate', 'prompt=hello', 'application/x-www-form-urlencoded');
    await post('nope', '{}');
    await fetch(`${kiln.url}/trpc/status?input=%ZZ`, { headers: { authorization: `Bearer ${kiln.apiKey}` } });
    await fetch(`${kiln.url}/trpc/%E0%A4%A?input=%7B%7D`, { headers: { authorization: `Bearer ${kiln.apiKey}` } });
    const socket = await openRawSocket(kiln.url, { apiKey: kiln.apiKey });
    socket.socket.send('not json');
    socket.socket.send(Buffer.from([0xff, 0xfe]), { binary: true });
    socket.send({ id: 1, method: 'subscription', params: { path: 'status', input: {} } });
    socket.send({ id: 2, method: 'query', params: { path: 'onUpdate', input: {} } });
    socket.send({ id: 3, method: 'mutation', params: { path: 'generate', input: { prompt: '\ud800' } } });
    socket.send({ id: 4, method: 'subscription', params: null });
    // Each is answered with a code that names the client's mistake.
    const codes = await Promise.all([1, 2, 3].map(async (id) => (await socket.reply(id, (reply) => reply.error !== undefined)).error?.data?.code));
    assert.ok(!codes.includes('INTERNAL_SERVER_ERROR'), `codes: ${codes.join(', ')}`);
    assert.equal(codes[2], 'BAD_REQUEST');
    socket.close();
    const { id } = await kiln.client.generate({ prompt: 'still serving' });
    assert.ok(id);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(errors, []);
  });
});
