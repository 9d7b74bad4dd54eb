// What the Studio's build leaves in server/studio/dist/ for the server to serve: the hashed
// files under ASSET_PREFIX, and a manifest naming them with what each weighs.

/** Where the page's hashed files are served (immutable), and where they sit in dist/. */
export const ASSET_PREFIX = '/studio/';
export const STUDIO_MANIFEST = 'manifest.json';

export interface StudioManifest {
  builtAt: string;
  index: { bytes: number; sha256: string };
  /** The hashed files: the script and the stylesheet, each with its gzip and brotli sizes. */
  files: { name: string; bytes: number; gzipBytes: number; brotliBytes: number }[];
}
