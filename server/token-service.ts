// Minting scoped tokens for browsers: the tenant's backend (holding the API key) asks for a
// token naming one generation or batch it owns, and hands it to the frontend.
import type { Kysely } from 'kysely';
import { findBatch, findGeneration } from '../db/generations.ts';
import type { Database } from '../db/schema.ts';
import type { CreateTokenInput, ScopedToken } from './api-types.ts';
import type { Caller } from './caller.ts';
import { notFound } from './errors.ts';
import type { TokenSigner } from './scoped-tokens.ts';
import type { TokenService } from './services.ts';

export function createTokenService(options: { db: Kysely<Database>; signer: TokenSigner }): TokenService {
  return {
    async mint(caller: Caller, request: CreateTokenInput): Promise<ScopedToken> {
      if (request.generationId) {
        if (!(await findGeneration(options.db, caller.tenantId, request.generationId))) throw notFound('generation', request.generationId);
        return options.signer.issue(caller, { kind: 'generation', id: request.generationId }, request.ttlSeconds);
      }
      const batchId = request.batchId ?? '';
      if (!(await findBatch(options.db, caller.tenantId, batchId))) throw notFound('batch', batchId);
      return options.signer.issue(caller, { kind: 'batch', id: batchId }, request.ttlSeconds);
    },
  };
}
