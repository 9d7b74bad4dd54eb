// Credentials → caller. Two kinds: API keys (`kiln_sk_…`, full access for a tenant) and scoped
// tokens (`kiln_st_…`, read-only access to one generation or batch; see scoped-tokens.ts).
// Keys are looked up by their SHA-256; a successful lookup is cached briefly so the hot path
// (generate at thousands per second) does not pay a query each time. The price: a revoked key
// keeps working in this process for at most `cacheMs`.
import type { Kysely } from 'kysely';
import { findActiveApiKey, hashApiKey } from '../db/api-keys.ts';
import type { Database } from '../db/schema.ts';
import type { Caller } from './caller.ts';
import type { AuthResult } from './context.ts';
import { TOKEN_PREFIX, type TokenSigner } from './scoped-tokens.ts';

export interface Authenticator {
  authenticate(credential: string): Promise<AuthResult>;
}

export function createAuthenticator(db: Kysely<Database>, tokens: TokenSigner, options: { cacheMs: number; maxEntries: number }): Authenticator {
  const { maxEntries } = options;
  const cache = new Map<string, { caller: Caller; expiresAt: number }>();

  async function byApiKey(apiKey: string): Promise<AuthResult> {
    const cacheKey = hashApiKey(apiKey).toString('base64');
    const hit = cache.get(cacheKey);
    if (hit && hit.expiresAt > Date.now()) return { ok: true, caller: hit.caller };
    cache.delete(cacheKey);
    const found = await findActiveApiKey(db, apiKey);
    if (!found) return { ok: false, reason: 'API key not recognised or revoked' };
    const caller: Caller = { tenantId: found.tenantId, tenantTier: found.tenantTier, scope: null };
    if (options.cacheMs > 0) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value ?? '');
      cache.set(cacheKey, { caller, expiresAt: Date.now() + options.cacheMs });
    }
    return { ok: true, caller };
  }

  return {
    async authenticate(credential) {
      if (!credential.startsWith(TOKEN_PREFIX)) return byApiKey(credential);
      const check = tokens.verify(credential);
      if (!check.ok) return check;
      return { ok: true, caller: { tenantId: check.claims.tenantId, tenantTier: '', scope: check.claims.scope } };
    },
  };
}

/** `Authorization: Bearer <credential>` → the credential, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
