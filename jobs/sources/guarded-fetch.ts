// Fetches an image a tenant named by URL, guarded against being pointed anywhere it should not:
//
// - http and https only, no credentials in the URL, the host among the tenant's allowed ones;
// - the address is checked where it is used: DNS is resolved by a lookup hook on the agent that
//   refuses non-public addresses, so the address connected to is the one checked (no second
//   resolution a rebinding DNS server could answer differently), IP literals are checked before
//   connecting, and the socket's remote address once more when it connects;
// - redirects are followed by hand, each hop checked again (host, address, no https → http), at
//   most `maxRedirects`;
// - time is capped (headers per hop, and the whole fetch), and bytes while they stream: a body
//   past the limit is broken off, and one whose first bytes are not an image is too.
//
// Every refusal is a SourceError with its reason; no message names an address Kiln resolved.
import dns, { type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { SNIFF_BYTES, sniffImageFormat } from '../render/render-variants.ts';
import { isAllowedAddress, type AddressPolicy } from './address-policy.ts';
import { SourceError } from './source-error.ts';

export interface GuardedFetchOptions {
  /** Whether a URL's host (URL.hostname) may be fetched from: the tenant's allowed source hosts. */
  isAllowedHost(hostname: string): boolean;
  /** Which non-public addresses may be connected to (none, outside development). */
  addresses: AddressPolicy;
  maxBytes: number;
  maxRedirects: number;
  /** From sending a request (connecting included) to its response's headers, per hop. */
  headersTimeoutMs: number;
  /** The whole fetch, every hop and the body included. */
  totalTimeoutMs: number;
  userAgent: string;
  /** How host names are resolved (default: the system's, dns.lookup); its answers are checked all the same. */
  lookup?: LookupFunction;
  signal?: AbortSignal;
}

export interface FetchedSource {
  bytes: Buffer;
  /** The URL the bytes came from, after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

export async function guardedFetch(rawUrl: string, options: GuardedFetchOptions): Promise<FetchedSource> {
  const deadline = AbortSignal.timeout(options.totalTimeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let url = parseSourceUrl(rawUrl);
  for (let redirects = 0; ; redirects += 1) {
    checkHop(url, options, redirects > 0);
    let answer: HopAnswer;
    try {
      answer = await fetchHop(url, options, signal);
    } catch (error) {
      if (deadline.aborted) throw new SourceError('timeout', `the image did not arrive within ${options.totalTimeoutMs / 1000} s`, { cause: error });
      throw error;
    }
    if (answer.kind === 'body') return { bytes: answer.bytes, url: url.href };
    if (redirects + 1 > options.maxRedirects) throw new SourceError('bad_redirect', `more than ${options.maxRedirects} redirects; give the image's final URL`);
    let next: URL;
    try {
      next = new URL(answer.location, url);
    } catch {
      throw new SourceError('bad_redirect', 'the server redirected to an invalid URL');
    }
    if (url.protocol === 'https:' && next.protocol === 'http:') throw new SourceError('bad_redirect', 'the server redirected from https to plain http; give an https URL that stays https');
    url = next;
  }
}

/** An absolute http(s) URL without credentials, or a SourceError saying what is wrong with it. */
export function parseSourceUrl(rawUrl: string): URL {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new SourceError('invalid_url', 'not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SourceError('invalid_url', `only http and https URLs are fetched, not ${url.protocol.slice(0, -1)}`);
  if (url.username || url.password) throw new SourceError('invalid_url', 'URLs with credentials in them are not fetched');
  return url;
}

/** The checks a URL passes before anything is sent to it: its scheme, its host, and the address when it is an IP literal. */
function checkHop(url: URL, options: GuardedFetchOptions, redirected: boolean): void {
  if (redirected && url.protocol !== 'http:' && url.protocol !== 'https:') throw new SourceError('bad_redirect', `the server redirected to a ${url.protocol.slice(0, -1)} URL; only http and https are fetched`);
  if (redirected && (url.username || url.password)) throw new SourceError('bad_redirect', 'the server redirected to a URL with credentials in it');
  if (!options.isAllowedHost(url.hostname)) {
    const where = redirected ? `the server redirected to ${url.hostname}, which` : `host ${url.hostname}`;
    throw new SourceError('host_not_allowed', `${where} is not among this tenant's allowed source hosts (the operator sets them: tenants set --source-hosts)`);
  }
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) !== 0 && !isAllowedAddress(literal, options.addresses)) throw privateAddress(url.hostname);
}

const privateAddress = (hostname: string) =>
  new SourceError('private_address', `${hostname} resolves to a private address; only images on public addresses are fetched`);

type HopAnswer = { kind: 'body'; bytes: Buffer } | { kind: 'redirect'; location: string };

/** One request: a redirect's location, or the body (capped, and checked to start like an image). */
function fetchHop(url: URL, options: GuardedFetchOptions, signal: AbortSignal): Promise<HopAnswer> {
  const lookup = guardedLookup(url.hostname, options);
  const secure = url.protocol === 'https:';
  // One agent per hop, not shared: its lookup hook is this fetch's, and nothing is kept alive.
  const agent = secure ? new https.Agent({ keepAlive: false, lookup }) : new http.Agent({ keepAlive: false, lookup });
  return new Promise<HopAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(headersTimer);
      agent.destroy();
      outcome();
    };
    const fail = (error: unknown) => finish(() => reject(asSourceError(error, url.hostname)));
    const request = (secure ? https : http).request(url, {
      method: 'GET',
      agent,
      signal,
      headers: { 'user-agent': options.userAgent, accept: 'image/png,image/jpeg,image/webp,image/avif' },
    });
    const headersTimer = setTimeout(() => request.destroy(new SourceError('timeout', `${url.hostname} did not answer within ${options.headersTimeoutMs / 1000} s`)), options.headersTimeoutMs);
    // The address actually connected to, checked once more (whatever resolved it).
    request.once('socket', (socket: Socket) => {
      socket.once('connect', () => {
        if (!socket.remoteAddress || !isAllowedAddress(socket.remoteAddress, options.addresses)) request.destroy(privateAddress(url.hostname));
      });
    });
    // `on`, not `once`: a socket torn down after the outcome may still report, and must not go unheard.
    request.on('error', fail);
    request.once('response', (response) => {
      clearTimeout(headersTimer);
      response.on('error', () => {}); // reported through the body's reader, or after the outcome (then moot)
      const status = response.statusCode ?? 0;
      if (REDIRECTS.has(status)) {
        const location = response.headers.location;
        response.destroy();
        if (!location) return fail(new SourceError('bad_redirect', `the server answered ${status} without a Location to redirect to`));
        return finish(() => resolve({ kind: 'redirect', location }));
      }
      if (status < 200 || status > 299) {
        response.destroy();
        return fail(new SourceError('http_status', `${url.hostname} answered ${status}${status === 404 || status === 410 ? ': no image at this URL' : ''}`));
      }
      const declared = Number(response.headers['content-length'] ?? Number.NaN);
      if (declared > options.maxBytes) {
        response.destroy();
        return fail(tooLarge(options.maxBytes));
      }
      readCapped(response, options.maxBytes).then((bytes) => finish(() => resolve({ kind: 'body', bytes })), fail);
    });
    request.end();
  });
}

/** The body, broken off past `maxBytes` or as soon as its first bytes show it is not an image. */
async function readCapped(response: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  let sniffed = false;
  try {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk);
      if (!sniffed && total >= SNIFF_BYTES) {
        sniffed = true;
        if (!sniffImageFormat(Buffer.concat(chunks))) throw new SourceError('not_an_image', 'the URL does not serve a PNG, JPEG, WebP or AVIF image (told from its bytes)');
      }
    }
  } finally {
    if (!response.complete) response.destroy();
  }
  return Buffer.concat(chunks);
}

const tooLarge = (maxBytes: number) => new SourceError('too_large', `the image is over the ${maxBytes}-byte limit`);

/** Resolves with the configured lookup and refuses the name when any of its addresses is not allowed. */
function guardedLookup(hostname: string, options: GuardedFetchOptions): LookupFunction {
  const base: LookupFunction = options.lookup ?? dns.lookup;
  return (name, lookupOptions, callback) => {
    base(name, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 4);
      const list = (Array.isArray(addresses) ? addresses : [{ address: addresses, family: 4 }]) as LookupAddress[];
      // Any non-public answer refuses the name: a host with one private address among public ones is pointed inward on purpose.
      if (list.length === 0 || list.some((entry) => !isAllowedAddress(entry.address, options.addresses))) {
        return callback(Object.assign(privateAddress(hostname), { code: 'KILN_REFUSED_ADDRESS' }), '', 4);
      }
      if (lookupOptions.all) return callback(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/** What a failure of one hop means for the caller, without the addresses Node's errors name. */
function asSourceError(error: unknown, hostname: string): SourceError {
  if (error instanceof SourceError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTFOUND') return new SourceError('unreachable', `host ${hostname} does not resolve`, { cause: error });
  if (code === 'ABORT_ERR' || (error instanceof Error && error.name === 'AbortError')) return new SourceError('timeout', 'the fetch was broken off', { cause: error });
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return new SourceError('unreachable', `${hostname}'s TLS certificate could not be verified`, { cause: error });
  }
  const why = code && NOT_CONNECTED.has(code) ? 'could not be reached' : 'broke off the connection';
  return new SourceError('unreachable', `${hostname} ${why}`, { cause: error });
}
