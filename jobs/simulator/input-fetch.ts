// Fetches an input image's bytes when a prediction starts, as Replicate's models download their
// file inputs: http(s) URLs (redirects followed), data: URIs, and the simulator's own URLs (Files
// API `urls.get`, output files), which it reads directly — they belong to its one account, and a
// round trip through its own rate limits would only slow load tests down. What goes wrong is an
// error message for the failed prediction, never an exception.

export type LoadResult = { ok: true; bytes: Buffer } | { ok: false; error: string };

export interface InputFetchOptions {
  /** Largest input accepted, fetched or inline. */
  readonly maxBytes: number;
  /** A download that takes longer fails. */
  readonly timeoutMs: number;
  /** The simulator's own base URL (no trailing slash). */
  readonly ownBaseUrl: () => string;
  /** Reads one of the simulator's own URLs by its path (e.g. /v1/files/{id}); a string is the error. */
  readonly readOwn: (path: string) => Promise<Buffer | string>;
  /** Aborts the download (the simulator is stopping). */
  readonly signal?: AbortSignal;
}

/**
 * The replicate JS client refuses inputs over 10,000,000 bytes and Replicate's docs advise data URIs
 * only under about 1 MB; the create body limit (maxBodyBytes) usually bites first.
 */
export const MAX_DATA_URI_BYTES = 10_000_000;

function describe(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'timed out';
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}

async function readCapped(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Buffer | null> {
  if (body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      await body.cancel().catch(() => {});
      return null;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export async function loadInputBytes(url: string, options: InputFetchOptions): Promise<LoadResult> {
  const fail = (error: string): LoadResult => ({ ok: false, error });
  const base = options.ownBaseUrl();
  if (url.startsWith(`${base}/`)) {
    const own = await options.readOwn(url.slice(base.length));
    if (typeof own === 'string') return fail(own);
    return own.length > options.maxBytes ? fail(`the file is larger than ${options.maxBytes} bytes`) : { ok: true, bytes: own };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('not a URL');
  }
  const isData = parsed.protocol === 'data:';
  if (!isData && parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return fail(`unsupported URL scheme ${parsed.protocol}`);
  const maxBytes = isData ? Math.min(MAX_DATA_URI_BYTES, options.maxBytes) : options.maxBytes;
  try {
    // Node's fetch decodes data: URIs too.
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
    const response = await fetch(parsed, { redirect: 'follow', signal });
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      return fail(`download failed with HTTP ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > maxBytes) {
      await response.body?.cancel().catch(() => {});
      return fail(`the file is larger than ${maxBytes} bytes`);
    }
    const bytes = await readCapped(response.body, maxBytes);
    return bytes === null ? fail(`the file is larger than ${maxBytes} bytes`) : { ok: true, bytes };
  } catch (error) {
    return fail(`download failed (${describe(error)})`);
  }
}
