// Which hosts a tenant's URL sources may come from. A pattern is a host name as URLs write it
// (lower case, IDNs in punycode) or an IP literal, matched exactly — 'cdn.shop.example' is that
// host and no other — or '*.shop.example', any host below shop.example (not shop.example itself,
// which needs its own entry). Exact by default, so allowing a store's image host never quietly
// allows every other name under the same domain; the wildcard says so when that is meant.
// Ports are not part of a pattern: the address check, not the port, keeps fetches off inner networks.

/** The pattern as it is stored and matched, or undefined when it is not one (a URL, a port, a path, a bare '*'). */
export function normalizeHostPattern(entry: string): string | undefined {
  const text = entry.trim().toLowerCase().replace(/\.$/, '');
  const wildcard = text.startsWith('*.');
  const host = wildcard ? text.slice(2) : text;
  if (host === '' || /[/?#@:\s*]/.test(host.replace(/^\[[0-9a-f:.]+\]$/, 'v6'))) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(`http://${host}`);
  } catch {
    return undefined;
  }
  // Stored as URLs will name it: punycode for IDNs, IPv4 and IPv6 in their canonical forms.
  const normal = parsed.hostname;
  if (parsed.port !== '' || parsed.pathname !== '/') return undefined;
  // A wildcard names the hosts below a domain: not below an IP, nor below a top-level domain ('*.com').
  if (wildcard && (normal.startsWith('[') || /^[\d.]+$/.test(normal) || !normal.includes('.'))) return undefined;
  return wildcard ? `*.${normal}` : normal;
}

/** Whether a URL's host (as `URL.hostname` gives it) is allowed by the patterns. */
export function isAllowedHost(hostname: string, patterns: readonly string[]): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return patterns.some((pattern) => (pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : host === pattern));
}
