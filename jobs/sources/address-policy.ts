// Which network addresses a URL source may be fetched from. Only public unicast addresses by
// default: a URL a tenant names must never reach Kiln's own machine, its private network or a
// cloud metadata endpoint (SSRF). Ranges from the IANA special-purpose registries (RFC 6890 and
// successors); an address embedding an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by it.
import { BlockList, isIP } from 'node:net';

/** What kind of address it is; anything but 'public' is refused unless the policy allows that kind. */
export type AddressKind = 'public' | 'loopback' | 'private' | 'shared' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

/** The kinds a development setup may allow (KILN_SOURCE_ALLOW_PRIVATE): local test servers live there. Metadata endpoints never. */
export const DEVELOPMENT_KINDS: readonly AddressKind[] = ['loopback', 'private', 'shared'];

/** Cloud metadata endpoints by address, refused whatever the policy (they hand out credentials). */
const METADATA_ADDRESSES: readonly [string, 'ipv4' | 'ipv6'][] = [
  ['169.254.169.254', 'ipv4'], // AWS, GCP, Azure, OpenStack…
  ['169.254.170.2', 'ipv4'], // AWS ECS task metadata
  ['100.100.100.200', 'ipv4'], // Alibaba Cloud
  ['fd00:ec2::254', 'ipv6'], // AWS over IPv6
];

const IPV4_RANGES: readonly [string, number, AddressKind][] = [
  ['0.0.0.0', 8, 'unspecified'], // "this network"; 0.0.0.0 connects to the local machine
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'], // carrier-grade NAT
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'reserved'], // documentation
  ['192.88.99.0', 24, 'reserved'], // 6to4 relay anycast
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'], // benchmarking
  ['198.51.100.0', 24, 'reserved'], // documentation
  ['203.0.113.0', 24, 'reserved'], // documentation
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // future use, and 255.255.255.255 broadcast
];

const IPV6_RANGES: readonly [string, number, AddressKind][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'reserved'], // IPv4-compatible (deprecated)
  ['64:ff9b:1::', 48, 'private'], // local-use NAT64
  ['100::', 64, 'reserved'], // discard
  ['2001::', 23, 'reserved'], // IETF protocol assignments (Teredo, ORCHID…)
  ['2001:db8::', 32, 'reserved'], // documentation
  ['fc00::', 7, 'private'], // unique local
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'], // site-local (deprecated)
  ['ff00::', 8, 'multicast'],
];

function blockLists(): Map<AddressKind, BlockList> {
  const lists = new Map<AddressKind, BlockList>();
  const listOf = (kind: AddressKind) => lists.get(kind) ?? lists.set(kind, new BlockList()).get(kind)!;
  for (const [address, family] of METADATA_ADDRESSES) listOf('metadata').addAddress(address, family);
  for (const [network, prefix, kind] of IPV4_RANGES) listOf(kind).addSubnet(network, prefix, 'ipv4');
  for (const [network, prefix, kind] of IPV6_RANGES) listOf(kind).addSubnet(network, prefix, 'ipv6');
  return lists;
}

const LISTS = blockLists();
/** Metadata first: those addresses also lie in broader ranges, and must be named for what they are. */
const ORDER: readonly AddressKind[] = ['metadata', 'unspecified', 'loopback', 'link-local', 'private', 'shared', 'multicast', 'reserved'];

/** The IPv4 address an IPv6 one stands for (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16), if any. */
function embeddedIpv4(address: string): string | undefined {
  const groups = expandIpv6(address);
  if (!groups) return undefined;
  const v4 = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((group) => group === 0);
  if (zeros(0, 5) && groups[5] === 0xffff) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!);
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (dotted IPv4 tail included), or undefined if it is none. */
function expandIpv6(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.toLowerCase().split('%', 1)[0]!;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const missing = 8 - left.length - right.length;
  return tail === undefined ? left : [...left, ...new Array<number>(missing).fill(0), ...right];
}

/** What kind of address this is (an IP literal; brackets and zone ids allowed). Not an IP: 'reserved', never connected to. */
export function classifyAddress(raw: string): AddressKind {
  const address = raw.replace(/^\[|\]$/g, '').split('%', 1)[0]!;
  const family = isIP(address);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const kind of ORDER) if (LISTS.get(kind)?.check(address, type)) return kind;
  if (family === 6) {
    const v4 = embeddedIpv4(address);
    if (v4 !== undefined) return classifyAddress(v4);
  }
  return 'public';
}

export interface AddressPolicy {
  /** Kinds allowed beside 'public' (development: DEVELOPMENT_KINDS). 'metadata' is never allowed. */
  alsoAllow: readonly AddressKind[];
}

/** Whether a connection to this address is allowed. */
export function isAllowedAddress(address: string, policy: AddressPolicy): boolean {
  const kind = classifyAddress(address);
  return kind === 'public' || (kind !== 'metadata' && policy.alsoAllow.includes(kind));
}
