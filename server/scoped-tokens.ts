// Scoped tokens: what a browser holds instead of the tenant's API key. A token names one
// generation or batch, may only read and subscribe, and expires (15 minutes by default). It
// also names the API key that minted it, so that revoking the key ends its tokens too.
// Format: `kiln_st_<payload>.<signature>`, both base64url; the signature is an HMAC-SHA256 of
// the payload with a secret all API processes share (kept in the database).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Scope } from './caller.ts';

export const TOKEN_PREFIX = 'kiln_st_';

const payloadSchema = z.object({
  t: z.uuid(), // tenant
  k: z.enum(['generation', 'batch']),
  i: z.uuid(),
  m: z.uuid(), // the minting API key
  e: z.int(), // expiry, unix seconds
});

export interface TokenClaims {
  tenantId: string;
  /** The API key that minted the token: the token works only while that key does. */
  keyId: string;
  scope: Scope;
  expiresAt: Date;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

export function createTokenSigner(secret: Buffer, now: () => number = Date.now) {
  const sign = (payload: string) => createHmac('sha256', secret).update(payload).digest();
  return {
    issue(minter: { tenantId: string; keyId: string }, scope: Scope, ttlSeconds: number): { token: string; expiresAt: Date } {
      const expires = Math.floor(now() / 1000) + ttlSeconds;
      const payload = Buffer.from(JSON.stringify({ t: minter.tenantId, k: scope.kind, i: scope.id, m: minter.keyId, e: expires })).toString('base64url');
      return { token: `${TOKEN_PREFIX}${payload}.${sign(payload).toString('base64url')}`, expiresAt: new Date(expires * 1000) };
    },
    verify(token: string): TokenCheck {
      const [payload = '', signature = ''] = token.slice(TOKEN_PREFIX.length).split('.');
      const expected = sign(payload);
      const given = Buffer.from(signature, 'base64url');
      if (!token.startsWith(TOKEN_PREFIX) || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return { ok: false, reason: 'token is not valid' };
      }
      let parsed: z.infer<typeof payloadSchema>;
      try {
        parsed = payloadSchema.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
      } catch {
        return { ok: false, reason: 'token is not valid' };
      }
      if (parsed.e * 1000 <= now()) return { ok: false, reason: 'token has expired; ask your backend for a new one' };
      return { ok: true, claims: { tenantId: parsed.t, keyId: parsed.m, scope: { kind: parsed.k, id: parsed.i }, expiresAt: new Date(parsed.e * 1000) } };
    },
  };
}

export type TokenSigner = ReturnType<typeof createTokenSigner>;
