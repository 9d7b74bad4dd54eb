// Builds the Studio, the page Kiln serves at `/`: one script and one stylesheet bundled by
// esbuild from server/studio/src (Preact and the client-sdk, nothing from a CDN), named by
// their content hash so they can be cached forever, each beside its gzip and brotli
// encodings; and index.html, which names them (served no-cache). Output: server/studio/dist/
// (git-ignored), with manifest.json recording what the bundle weighs.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { ASSET_PREFIX, STUDIO_MANIFEST, type StudioManifest } from './manifest.ts';

const here = import.meta.dirname;
const dist = path.join(here, 'dist');
const assets = path.join(dist, 'assets');
rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  entryPoints: { studio: path.join(here, 'src', 'main.tsx') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome115', 'firefox115', 'safari16'],
  minify: true,
  legalComments: 'none',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  define: { 'process.env.NODE_ENV': '"production"' },
  entryNames: '[name]-[hash]',
  outdir: assets,
  metafile: true,
  logLevel: 'warning',
});

const files: StudioManifest['files'] = [];
for (const output of Object.keys(result.metafile.outputs)) {
  const file = path.resolve(output);
  const bytes = readFileSync(file);
  const gzip = gzipSync(bytes, { level: 9 });
  const brotli = brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } });
  writeFileSync(`${file}.gz`, gzip);
  writeFileSync(`${file}.br`, brotli);
  files.push({ name: path.basename(file), bytes: bytes.length, gzipBytes: gzip.length, brotliBytes: brotli.length });
}
const script = files.find((file) => file.name.endsWith('.js'));
const style = files.find((file) => file.name.endsWith('.css'));
if (!script || !style) throw new Error('the Studio build made no script or no stylesheet');

const template = readFileSync(path.join(here, 'index.html'), 'utf8');
const html = template
  .replace('<!-- styles -->', `<link rel="stylesheet" href="${ASSET_PREFIX}${style.name}">`)
  .replace('<!-- script -->', `<script type="module" src="${ASSET_PREFIX}${script.name}"></script>`);
writeFileSync(path.join(dist, 'index.html'), html);

const manifest: StudioManifest = {
  builtAt: new Date().toISOString(),
  index: { bytes: Buffer.byteLength(html), sha256: createHash('sha256').update(html).digest('hex') },
  files,
};
writeFileSync(path.join(dist, STUDIO_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const total = (key: 'bytes' | 'gzipBytes' | 'brotliBytes') => files.reduce((sum, file) => sum + file[key], 0);
console.log(`Studio built: ${files.map((file) => `${file.name} ${kb(file.bytes)}`).join(', ')}; ${kb(total('bytes'))} in all, ${kb(total('gzipBytes'))} gzip, ${kb(total('brotliBytes'))} brotli`);
