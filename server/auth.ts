// Credentials → caller. Two kinds: API keys (`kiln_sk_…`, full access for a tenant) and scoped
// tokens (`kiln_st_…`, read-only access to one generation or batch; see scoped-tokens.ts).
// Keys are looked up by their SHA-256; a successful lookup is cached briefly so the hot path
// (generate at thousands per second) does not pay a query each time. The price: a revoked key
// keeps working in this process for at most `cacheMs` (revoked through this process: not at
// all, see `forget`). A token works only while the key that minted it does, looked up the same
// way; its signature and expiry are checked on every call, never cached.
import type { Kysely } from 'kysely';
import { findActiveApiKey, findActiveApiKeyById, hashApiKey, type AuthenticatedKey } from '../db/api-keys.ts';
import type { Database } from '../db/schema.ts';
import type { AuthResult } from './context.ts';
import { TOKEN_PREFIX, type TokenSigner } from './scoped-tokens.ts';

export interface Authenticator {
  authenticate(credential: string): Promise<AuthResult>;
  /** Forgets a key this process verified, so that its revocation holds here at once. */
  forget(keyId: string): void;
}

export function createAuthenticator(db: Kysely<Database>, tokens: TokenSigner, options: { cacheMs: number; maxEntries: number }): Authenticator {
  const { maxEntries, cacheMs } = options;
  // By the key's hash (API keys) and by its id (the minters of tokens).
  const cache = new Map<string, { key: AuthenticatedKey; expiresAt: number }>();

  // Lookups under way, shared: the open subscriptions of one key all check it again when its
  // entry lapses, and must not each send the same query.
  const pending = new Map<string, Promise<{ key: AuthenticatedKey; expiresAt: number } | undefined>>();

  // A lookup that was under way when a key was forgotten may have read it before its revocation.
  let lastForgotten = 0;

  async function lookUp(cacheKey: string, lookup: () => Promise<AuthenticatedKey | undefined>) {
    const startedAt = performance.now();
    const key = await lookup();
    if (!key) return undefined;
    const entry = { key, expiresAt: Date.now() + cacheMs };
    if (cacheMs > 0 && lastForgotten < startedAt) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value ?? '');
      cache.set(cacheKey, entry);
    }
    return entry;
  }

  function activeKey(cacheKey: string, lookup: () => Promise<AuthenticatedKey | undefined>) {
    const hit = cache.get(cacheKey);
    if (hit && hit.expiresAt > Date.now()) return Promise.resolve(hit);
    cache.delete(cacheKey);
    let running = pending.get(cacheKey);
    if (!running) {
      running = lookUp(cacheKey, lookup).finally(() => pending.delete(cacheKey));
      pending.set(cacheKey, running);
    }
    return running;
  }

  async function byApiKey(apiKey: string): Promise<AuthResult> {
    const found = await activeKey(`h:${hashApiKey(apiKey).toString('base64')}`, () => findActiveApiKey(db, apiKey));
    if (!found) return { ok: false, reason: 'API key not recognised or revoked' };
    const { keyId, tenantId, tenantTier } = found.key;
    return { ok: true, caller: { tenantId, tenantTier, keyId, scope: null }, validUntil: found.expiresAt };
  }

  async function byToken(token: string): Promise<AuthResult> {
    const check = tokens.verify(token);
    if (!check.ok) return check;
    const { claims } = check;
    const minter = await activeKey(`i:${claims.keyId}`, () => findActiveApiKeyById(db, claims.keyId));
    if (!minter || minter.key.tenantId !== claims.tenantId) {
      return { ok: false, reason: 'token was revoked with the API key that minted it; ask your backend for a new one' };
    }
    return {
      ok: true,
      caller: { tenantId: claims.tenantId, tenantTier: minter.key.tenantTier, keyId: claims.keyId, scope: claims.scope },
      validUntil: Math.min(minter.expiresAt, claims.expiresAt.getTime()),
    };
  }

  return {
    authenticate: (credential) => (credential.startsWith(TOKEN_PREFIX) ? byToken(credential) : byApiKey(credential)),
    forget(keyId) {
      lastForgotten = performance.now();
      pending.clear();
      for (const [cacheKey, entry] of cache) if (entry.key.keyId === keyId) cache.delete(cacheKey);
    },
  };
}

/** `Authorization: Bearer <credential>` → the credential, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
