// Image sources: an upload or a URL in, one stored image out — checked (format from the bytes,
// pixels from the header), kept once per tenant by content in the asset store, and answered
// by id. It implements SourceService (services.ts); refusals of the image or the URL are
// SourceErrors, answered through server/errors.ts's one table with the field they are about.
import type { Kysely } from 'kysely';
import type { LookupFunction } from 'node:net';
import { findImageSource, findImageSourceByContent, findTenantSourceHosts, recordImageSource } from '../db/image-sources.ts';
import { createIdFactory } from '../db/ids.ts';
import type { Database, ImageSource, SourceOrigin } from '../db/schema.ts';
import { IMAGE_FILE_TYPES } from '../jobs/render/presets.ts';
import type { AddressPolicy } from '../jobs/sources/address-policy.ts';
import { guardedFetch, parseSourceUrl } from '../jobs/sources/guarded-fetch.ts';
import { isAllowedHost } from '../jobs/sources/host-allowlist.ts';
import { inspectImage } from '../jobs/sources/inspect-image.ts';
import { SourceError, isSourceError } from '../jobs/sources/source-error.ts';
import type { AssetStorage } from '../jobs/storage/storage.ts';
import type { SourceStored, SourceView } from './api-types.ts';
import { notFound, sourceRefused, tooLarge } from './errors.ts';
import type { RequestLimiter } from './request-limiter.ts';
import type { Caller, SourceService } from './services.ts';

export interface SourceServiceOptions {
  db: Kysely<Database>;
  storage: AssetStorage;
  /** Base URL under which /assets/<key> is served (known once the server listens). */
  publicUrl: () => string;
  /** Uploads and fetches count against the tenant's request budget, as any call that writes. */
  requestLimiter: RequestLimiter;
  limits: { maxBytes: number; maxPixels: number };
  fetch: { totalTimeoutMs: number; headersTimeoutMs: number; maxRedirects: number; userAgent: string };
  /** Which non-public addresses a URL may reach (none, outside development). */
  addresses: AddressPolicy;
  /** How host names are resolved (default: the system's); tests point names where they like. */
  lookup?: LookupFunction;
}

export function createSourceService(options: SourceServiceOptions): SourceService {
  const { db, storage, requestLimiter, limits } = options;
  const newId = createIdFactory();

  const view = (source: ImageSource): SourceView => ({
    id: source.id,
    format: source.format,
    width: source.width,
    height: source.height,
    bytes: source.bytes,
    contentHash: source.content_hash,
    origin: source.origin,
    url: `${options.publicUrl()}/assets/${source.storage_key}`,
    fetchedFrom: source.url,
    filename: source.filename,
    createdAt: source.created_at,
  });

  /** Runs `work`, answering a refused image or URL as the API does, about `field`. */
  async function refusingAs<T>(field: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw isSourceError(error) ? sourceRefused(error, field) : error;
    }
  }

  /** Checks the image and keeps it, unless the tenant has these bytes already. */
  async function keep(caller: Caller, bytes: Buffer, origin: { origin: SourceOrigin; url: string | null; filename: string | null }): Promise<SourceStored> {
    const image = await inspectImage(bytes, limits);
    const known = await findImageSourceByContent(db, caller.tenantId, image.contentHash);
    if (known) return { ...view(known), deduplicated: true };
    const key = `${image.contentHash}.${IMAGE_FILE_TYPES[image.format].extension}`;
    // The object first, then the row that names it: a row never names a missing object.
    await storage.put(key, bytes);
    const { source, deduplicated } = await recordImageSource(
      db,
      { id: newId(), tenant_id: caller.tenantId, content_hash: image.contentHash, storage_key: key, format: image.format, width: image.width, height: image.height, bytes: image.bytes, ...origin },
      () => storage.put(key, bytes),
    );
    return { ...view(source), deduplicated };
  }

  return {
    async upload(caller, input) {
      await requestLimiter.admit(caller.tenantId, new Map([[null, 1]]), '(input)');
      // The HTTP entry caps the body; the file itself may not use the multipart allowance.
      if (input.file.size > limits.maxBytes) throw tooLarge(`file: the image is ${input.file.size} bytes, over the ${limits.maxBytes}-byte limit`);
      const bytes = Buffer.from(await input.file.arrayBuffer());
      return refusingAs('file', () => keep(caller, bytes, { origin: 'upload', url: null, filename: input.filename ?? null }));
    },

    async fromUrl(caller, input) {
      await requestLimiter.admit(caller.tenantId, new Map([[null, 1]]), '(input)');
      return refusingAs('url', async () => {
        const url = parseSourceUrl(input.url);
        const hosts = (await findTenantSourceHosts(db, caller.tenantId)) ?? [];
        if (hosts.length === 0) {
          throw new SourceError('host_not_allowed', 'URL sources are off for this tenant: it has no allowed source hosts (the operator sets them: tenants set --source-hosts); upload the image instead');
        }
        const fetched = await guardedFetch(url.href, {
          isAllowedHost: (hostname) => isAllowedHost(hostname, hosts),
          addresses: options.addresses,
          maxBytes: limits.maxBytes,
          ...options.fetch,
          ...(options.lookup ? { lookup: options.lookup } : {}),
        });
        return keep(caller, fetched.bytes, { origin: 'url', url: url.href, filename: null });
      });
    },

    async get(caller, id) {
      const source = await findImageSource(db, caller.tenantId, id);
      if (!source) throw notFound('source', id);
      return view(source);
    },
  };
}
