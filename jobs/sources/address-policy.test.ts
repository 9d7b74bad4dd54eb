import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEVELOPMENT_KINDS, classifyAddress, isAllowedAddress, type AddressKind } from './address-policy.ts';

describe('the address policy of URL sources', () => {
  const cases: [string, AddressKind][] = [
    ['8.8.8.8', 'public'],
    ['93.184.216.34', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['169.254.1.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    // IPv6 forms of IPv4 addresses are judged by the IPv4 address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::a00:1', 'private'],
    ['64:ff9b::808:808', 'public'],
    ['2002:c0a8:0101::1', 'private'],
    ['2002:0808:0808::1', 'public'],
    ['::127.0.0.1', 'reserved'],
    ['not an address', 'reserved'],
  ];
  for (const [address, kind] of cases) {
    it(`takes ${address} for ${kind}`, () => assert.equal(classifyAddress(address), kind));
  }

  it('allows only public addresses by default', () => {
    for (const [address, kind] of cases) assert.equal(isAllowedAddress(address, { alsoAllow: [] }), kind === 'public', address);
  });

  it('lets development reach loopback and private networks, never a metadata endpoint or a multicast address', () => {
    const development = { alsoAllow: DEVELOPMENT_KINDS };
    assert.equal(isAllowedAddress('127.0.0.1', development), true);
    assert.equal(isAllowedAddress('::1', development), true);
    assert.equal(isAllowedAddress('10.0.0.5', development), true);
    assert.equal(isAllowedAddress('169.254.169.254', development), false);
    assert.equal(isAllowedAddress('fd00:ec2::254', development), false);
    assert.equal(isAllowedAddress('169.254.1.1', development), false);
    assert.equal(isAllowedAddress('224.0.0.1', development), false);
    assert.equal(isAllowedAddress('0.0.0.0', development), false);
    assert.equal(isAllowedAddress('metadata', { alsoAllow: ['metadata'] }), false);
  });
});
