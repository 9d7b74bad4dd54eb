// API key → caller. Keys are looked up by their SHA-256; a successful lookup is cached
// briefly so the hot path (generate at thousands per second) does not pay a query each time.
// The price: a revoked key keeps working in this process for at most `cacheMs`.
import type { Kysely } from 'kysely';
import { findActiveApiKey, hashApiKey } from '../db/api-keys.ts';
import type { Database } from '../db/schema.ts';
import type { Caller } from './generation-service.ts';

export interface Authenticator {
  authenticate(apiKey: string): Promise<Caller | undefined>;
}

export function createAuthenticator(db: Kysely<Database>, options: { cacheMs: number; maxEntries?: number }): Authenticator {
  const maxEntries = options.maxEntries ?? 10_000;
  const cache = new Map<string, { caller: Caller; expiresAt: number }>();
  return {
    async authenticate(apiKey) {
      const cacheKey = hashApiKey(apiKey).toString('base64');
      const hit = cache.get(cacheKey);
      if (hit && hit.expiresAt > Date.now()) return hit.caller;
      cache.delete(cacheKey);
      const found = await findActiveApiKey(db, apiKey);
      if (!found) return undefined;
      const caller: Caller = { tenantId: found.tenantId, tenantTier: found.tenantTier };
      if (options.cacheMs > 0) {
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value ?? '');
        cache.set(cacheKey, { caller, expiresAt: Date.now() + options.cacheMs });
      }
      return caller;
    },
  };
}

/** `Authorization: Bearer <key>` → the key, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
