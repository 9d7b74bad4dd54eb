// The Studio's route before and after a build: without one, `/` says how to make it (and
// nothing else pretends to be the page); a build made while Kiln runs is served at once.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createStudioRoute } from './studio-route.ts';
import type { StudioManifest } from './studio/manifest.ts';

describe('the Studio route', () => {
  let folder: string;
  let server: http.Server;
  let url: string;
  before(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'kiln-studio-'));
    const route = createStudioRoute({ folder, assetOrigin: () => 'http://assets.example' });
    server = http.createServer((req, res) => {
      if (!route(req, res, new URL(req.url ?? '/', 'http://kiln').pathname)) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(folder, { recursive: true, force: true });
  });

  it('says the page is not built, and how to build it, while there is no build', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 503);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(await page.text(), /Kiln Studio is not built[\s\S]*npm run build/);
    assert.equal((await fetch(`${url}/studio/studio-ABC.js`)).status, 404);
    assert.equal((await fetch(`${url}/other`)).status, 404, 'other paths are not the Studio\'s');
  });

  it('serves a build made while it runs: the page no-cache, its files immutable, in the encoding asked for', async () => {
    await mkdir(path.join(folder, 'assets'));
    await writeFile(path.join(folder, 'index.html'), '<!doctype html><script type="module" src="/studio/studio-ABC.js"></script>');
    await writeFile(path.join(folder, 'assets', 'studio-ABC.js'), 'console.log("studio")');
    await writeFile(path.join(folder, 'assets', 'studio-ABC.js.gz'), 'gzip bytes');
    const manifest: StudioManifest = { builtAt: new Date().toISOString(), index: { bytes: 70, sha256: 'a'.repeat(64) }, files: [{ name: 'studio-ABC.js', bytes: 21, gzipBytes: 10, brotliBytes: 0 }] };
    await writeFile(path.join(folder, 'manifest.json'), JSON.stringify(manifest));

    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(page.headers.get('content-security-policy') ?? '', /img-src 'self' blob: data: http:\/\/assets\.example;/);
    assert.equal((await fetch(`${url}/`, { headers: { 'If-None-Match': page.headers.get('etag') ?? '' } })).status, 304);

    const script = await new Promise<http.IncomingMessage>((resolve) => http.get(`${url}/studio/studio-ABC.js`, { headers: { 'Accept-Encoding': 'gzip' } }, resolve));
    script.resume();
    assert.equal(script.statusCode, 200);
    assert.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(script.headers['content-encoding'], 'gzip');
    assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal((await fetch(`${url}/`, { method: 'POST' })).status, 405);
  });
});
