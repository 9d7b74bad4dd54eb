// The URL guard against real local servers. The tests' "development" policy lets loopback
// through (where the servers are) and nothing else; names are resolved by an injected lookup,
// as a hostile DNS server would answer them.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { guardedFetch, type GuardedFetchOptions } from './guarded-fetch.ts';
import { SourceError, type SourceErrorReason } from './source-error.ts';

/** Resolves names from a table, as a DNS server of the test's choosing would. */
const lookupFrom = (table: Record<string, string>): LookupFunction => (hostname, options, callback) => {
  const address = table[hostname];
  if (!address) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
  const family = address.includes(':') ? 6 : 4;
  if (options.all) return callback(null, [{ address, family }]);
  callback(null, address, family);
};

async function refusal(promise: Promise<unknown>): Promise<SourceError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SourceError, `a SourceError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected a refusal');
}

describe('guardedFetch', () => {
  let server: http.Server;
  let port: number;
  let png: Buffer;
  before(async () => {
    png = await sharp({ create: { width: 8, height: 6, channels: 3, background: '#c33' } }).png().toBuffer();
    server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/image.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(png);
      if (path.startsWith('/redirect/')) return void res.writeHead(302, { location: decodeURIComponent(path.slice('/redirect/'.length)) }).end();
      if (path.startsWith('/hops/')) {
        const left = Number(path.slice('/hops/'.length));
        return void res.writeHead(302, { location: left > 0 ? `/hops/${left - 1}` : '/image.png' }).end();
      }
      if (path === '/page.html') return void res.writeHead(200, { 'content-type': 'image/png' }).end('<html><body>not an image</body></html>');
      if (path === '/huge') {
        // No Content-Length: the cap must act while the body streams.
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(png.subarray(0, 16));
        const timer = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 1);
        res.once('close', () => clearInterval(timer));
        return;
      }
      if (path === '/slow-headers') return void setTimeout(() => res.writeHead(200).end(png), 3_000).unref();
      if (path === '/slow-body') {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(png.subarray(0, 16));
        const timer = setTimeout(() => res.end(png.subarray(16)), 3_000);
        timer.unref();
        res.once('close', () => clearTimeout(timer));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const options = (overrides: Partial<GuardedFetchOptions> = {}): GuardedFetchOptions => ({
    isAllowedHost: () => true,
    addresses: { alsoAllow: ['loopback'] },
    maxBytes: 1024 * 1024,
    maxRedirects: 3,
    headersTimeoutMs: 1_000,
    totalTimeoutMs: 5_000,
    userAgent: 'kiln-test',
    lookup: lookupFrom({ 'images.test': '127.0.0.1', 'inner.test': '10.0.0.7', 'metadata.test': '169.254.169.254', 'mapped.test': '::ffff:192.168.0.1' }),
    ...overrides,
  });
  const at = (path: string, host = '127.0.0.1') => `http://${host}:${port}${path}`;
  const reasonOf = async (url: string, overrides?: Partial<GuardedFetchOptions>): Promise<SourceErrorReason> => (await refusal(guardedFetch(url, options(overrides)))).reason;

  it('fetches an image from an allowed host, by name and by address', async () => {
    const byName = await guardedFetch(at('/image.png', 'images.test'), options());
    assert.deepEqual(byName.bytes, png);
    assert.equal(byName.url, at('/image.png', 'images.test'));
    assert.deepEqual((await guardedFetch(at('/image.png'), options())).bytes, png);
  });

  it('refuses loopback with the default policy, saying only that the address is private', async () => {
    for (const url of [at('/image.png'), `http://[::1]:${port}/image.png`]) {
      assert.equal(await reasonOf(url, { addresses: { alsoAllow: [] } }), 'private_address', url);
    }
    const byName = await refusal(guardedFetch(at('/image.png', 'images.test'), options({ addresses: { alsoAllow: [] } })));
    assert.equal(byName.reason, 'private_address');
    assert.equal(byName.message, 'images.test resolves to a private address; only images on public addresses are fetched');
  });

  it('refuses a name that resolves to a private, metadata or IPv4-mapped private address', async () => {
    for (const host of ['inner.test', 'metadata.test', 'mapped.test']) {
      const error = await refusal(guardedFetch(at('/image.png', host), options()));
      assert.equal(error.reason, 'private_address', host);
      assert.equal(error.message, `${host} resolves to a private address; only images on public addresses are fetched`);
    }
  });

  it('checks every redirect again: its address, its host, and no step down from https', async () => {
    assert.equal(await reasonOf(at(`/redirect/${encodeURIComponent('http://10.0.0.7/x.png')}`)), 'private_address');
    assert.equal(await reasonOf(at(`/redirect/${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`)), 'private_address');
    assert.equal(await reasonOf(at(`/redirect/${encodeURIComponent(at('/image.png', 'inner.test'))}`)), 'private_address');
    const hostRefused = await refusal(guardedFetch(at(`/redirect/${encodeURIComponent(at('/image.png', 'images.test'))}`), options({ isAllowedHost: (host) => host === '127.0.0.1' })));
    assert.equal(hostRefused.reason, 'host_not_allowed');
    assert.match(hostRefused.message, /redirected to images\.test/);
    assert.equal(await reasonOf(at(`/redirect/${encodeURIComponent('file:///etc/passwd')}`)), 'bad_redirect');
    // A redirect within the allowed hosts and addresses is followed.
    assert.deepEqual((await guardedFetch(at(`/redirect/${encodeURIComponent('/image.png')}`), options())).bytes, png);
  });

  it('follows at most maxRedirects redirects', async () => {
    assert.deepEqual((await guardedFetch(at('/hops/2'), options())).bytes, png); // 3 redirects
    const error = await refusal(guardedFetch(at('/hops/3'), options()));
    assert.equal(error.reason, 'bad_redirect');
    assert.match(error.message, /more than 3 redirects/);
  });

  it('breaks a body off past the byte limit, and one that does not start like an image', async () => {
    const started = Date.now();
    assert.equal(await reasonOf(at('/huge'), { maxBytes: 256 * 1024 }), 'too_large');
    assert.ok(Date.now() - started < 2_000, 'broken off, not read to its end');
    assert.equal(await reasonOf(at('/image.png'), { maxBytes: png.length - 1 }), 'too_large'); // its Content-Length says so
    assert.equal(await reasonOf(at('/page.html')), 'not_an_image');
  });

  it('times out a server slow to answer, and one slow to send its body', async () => {
    const headers = await refusal(guardedFetch(at('/slow-headers'), options({ headersTimeoutMs: 300 })));
    assert.equal(headers.reason, 'timeout');
    const body = await refusal(guardedFetch(at('/slow-body'), options({ totalTimeoutMs: 500 })));
    assert.equal(body.reason, 'timeout');
    assert.match(body.message, /within 0\.5 s/);
  });

  it('refuses what is not an http(s) URL, and says when a host cannot be reached', async () => {
    assert.equal(await reasonOf('ftp://images.test/x.png'), 'invalid_url');
    assert.equal(await reasonOf('/relative.png'), 'invalid_url');
    assert.equal(await reasonOf(`http://user:secret@images.test:${port}/image.png`), 'invalid_url');
    assert.equal(await reasonOf(at('/image.png', 'nowhere.test')), 'unreachable');
    assert.equal(await reasonOf(at('/missing.png')), 'http_status');
    assert.equal(await reasonOf(at('/image.png', 'images.test'), { isAllowedHost: () => false }), 'host_not_allowed');
  });
});
