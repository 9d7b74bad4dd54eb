// Serves the Studio (server/studio/), the page at `/`: index.html revalidated on every load
// (no-cache, with an ETag), the hashed script and stylesheet under /studio/ cached forever
// (their names change with their content), each in the best encoding the browser accepts
// (brotli, gzip, or none). The files are read once from the build's output; until there is
// one, `/` says how to build it.
import type http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ASSET_PREFIX, STUDIO_MANIFEST, type StudioManifest } from './studio/manifest.ts';

export interface StudioRouteOptions {
  /** The build's output folder (server/studio/dist). */
  folder: string;
  /** Where asset URLs point (KILN_PUBLIC_URL, or this API): the page shows those images. */
  assetOrigin: () => string;
}

interface StudioFile {
  contentType: string;
  etag: string;
  body: Buffer;
  gzip: Buffer | undefined;
  brotli: Buffer | undefined;
}

interface LoadedStudio {
  index: StudioFile;
  assets: Map<string, StudioFile>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

/** True when it answered the request (`/`, `/index.html` or a file under /studio/). */
export type StudioRoute = (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => boolean;

export function createStudioRoute(options: StudioRouteOptions): StudioRoute {
  let loaded: LoadedStudio | undefined;
  // Read when first asked for, and again while there is none: a build made while Kiln runs is served at once.
  const studio = () => (loaded ??= load(options.folder));

  return (req, res, pathname) => {
    const isIndex = pathname === '/' || pathname === '/index.html';
    if (!isIndex && !pathname.startsWith(ASSET_PREFIX)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return true;
    }
    const current = studio();
    if (!current) {
      if (isIndex) notBuilt(req, res);
      else res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end('not found\n');
      return true;
    }
    if (isIndex) {
      send(req, res, current.index, { 'Cache-Control': 'no-cache', ...pageHeaders(options.assetOrigin()) });
      return true;
    }
    const file = current.assets.get(pathname.slice(ASSET_PREFIX.length));
    if (!file) {
      // An old page asking for a file of an earlier build: it reloads and gets the current one.
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end('not found\n');
      return true;
    }
    send(req, res, file, { 'Cache-Control': 'public, max-age=31536000, immutable' });
    return true;
  };
}

function load(folder: string): LoadedStudio | undefined {
  const manifestFile = path.join(folder, STUDIO_MANIFEST);
  if (!existsSync(manifestFile)) return undefined;
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as StudioManifest;
  const read = (file: string): StudioFile => {
    const body = readFileSync(file);
    const encoded = (suffix: string) => (existsSync(file + suffix) ? readFileSync(file + suffix) : undefined);
    return {
      contentType: CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      etag: `"${path.basename(file)}"`, // the name holds the content's hash
      body,
      gzip: encoded('.gz'),
      brotli: encoded('.br'),
    };
  };
  const index = read(path.join(folder, 'index.html'));
  index.etag = `"${manifest.index.sha256.slice(0, 32)}"`;
  return { index, assets: new Map(manifest.files.map((file) => [file.name, read(path.join(folder, 'assets', file.name))])) };
}

/** The page may load only Kiln's own script, styles and images, and talk only to Kiln. */
function pageHeaders(assetOrigin: string): Record<string, string> {
  const images = new Set(["'self'", 'blob:', 'data:']);
  try {
    images.add(new URL(assetOrigin).origin);
  } catch {
    // no public URL yet: the page's own origin serves the assets
  }
  return {
    'Content-Security-Policy': `default-src 'none'; script-src 'self'; style-src 'self'; img-src ${[...images].join(' ')}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  };
}

function send(req: http.IncomingMessage, res: http.ServerResponse, file: StudioFile, headers: Record<string, string>): void {
  const common = { ...headers, 'Content-Type': file.contentType, ETag: file.etag, Vary: 'Accept-Encoding', 'X-Content-Type-Options': 'nosniff' };
  if (req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === file.etag)) {
    res.writeHead(304, common).end();
    return;
  }
  const accepted = String(req.headers['accept-encoding'] ?? '');
  const [encoding, body] = file.brotli && /\bbr\b/.test(accepted) ? ['br', file.brotli] : file.gzip && /\bgzip\b/.test(accepted) ? ['gzip', file.gzip] : [undefined, file.body];
  res.writeHead(200, { ...common, ...(encoding ? { 'Content-Encoding': encoding } : {}), 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function notBuilt(req: http.IncomingMessage, res: http.ServerResponse): void {
  const html = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Kiln Studio is not built</title>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem">
<h1>Kiln Studio is not built</h1>
<p>The API is running (<code>/trpc</code>, <code>/health</code>), but the Studio page has not been built on this machine.
Run <code>npm run build</code> (it runs on <code>npm install</code> too) and reload this page.</p></body></html>\n`;
  res.writeHead(503, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store', 'Retry-After': '5' });
  res.end(req.method === 'HEAD' ? undefined : html);
}
