import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAllowedHost, normalizeHostPattern } from './host-allowlist.ts';

describe('allowed source hosts', () => {
  it('keeps host names, IP literals and wildcards below a domain, in the form URLs name them', () => {
    assert.equal(normalizeHostPattern('CDN.Shop.Example'), 'cdn.shop.example');
    assert.equal(normalizeHostPattern(' images.shop.example. '), 'images.shop.example');
    assert.equal(normalizeHostPattern('*.shop.example'), '*.shop.example');
    assert.equal(normalizeHostPattern('bücher.example'), 'xn--bcher-kva.example');
    assert.equal(normalizeHostPattern('127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeHostPattern('[::1]'), '[::1]');
    assert.equal(normalizeHostPattern('localhost'), 'localhost');
  });

  it('refuses what is not a host: URLs, ports, paths, credentials, bare or misplaced wildcards', () => {
    for (const entry of ['', 'https://shop.example', 'shop.example:8080', 'shop.example/images', 'user@shop.example', '*', '*.com', 'images.*.example', '*.127.0.0.1', 'a b.example', '::1']) {
      assert.equal(normalizeHostPattern(entry), undefined, entry);
    }
  });

  it('matches exactly, or below a domain for a wildcard (not the domain itself)', () => {
    const patterns = ['cdn.shop.example', '*.media.example'];
    assert.equal(isAllowedHost('cdn.shop.example', patterns), true);
    assert.equal(isAllowedHost('CDN.shop.example.', patterns), true);
    assert.equal(isAllowedHost('shop.example', patterns), false);
    assert.equal(isAllowedHost('evil-cdn.shop.example', patterns), false);
    assert.equal(isAllowedHost('cdn.shop.example.evil.example', patterns), false);
    assert.equal(isAllowedHost('a.media.example', patterns), true);
    assert.equal(isAllowedHost('a.b.media.example', patterns), true);
    assert.equal(isAllowedHost('media.example', patterns), false);
    assert.equal(isAllowedHost('evilmedia.example', patterns), false);
    assert.equal(isAllowedHost('anything.example', []), false);
  });
});
