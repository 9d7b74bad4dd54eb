// Who is calling: a tenant, with either full access (an API key) or access scoped to one
// generation or batch (a short-lived token a browser may hold; read and subscribe only).
import { notFound } from './errors.ts';
import type { Caller } from './services.ts';

// Declared with the service contracts, whose every call takes a caller.
export type { Caller, Scope } from './services.ts';

// Outside its scope, a token is told exactly what a missing id would tell it: otherwise the
// answer would say that the id exists in the tenant.

/** Whether a scoped caller may read this generation (its own, or one of its batch's). */
export function assertMayReadGeneration(caller: Caller, generation: { id: string; batch_id: string | null }): void {
  const scope = caller.scope;
  if (!scope) return;
  if (scope.kind === 'generation' && scope.id === generation.id) return;
  if (scope.kind === 'batch' && scope.id === generation.batch_id) return;
  throw notFound('generation', generation.id);
}

export function assertMayReadBatch(caller: Caller, batchId: string): void {
  const scope = caller.scope;
  if (!scope || (scope.kind === 'batch' && scope.id === batchId)) return;
  throw notFound('batch', batchId);
}
