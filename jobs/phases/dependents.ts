// What a success sets going, in the transaction that completes it: the children that waited for
// its output get it as their input and become waiting work (a chain, or the next step of a
// composite), and the composite it is a part of is assembled once every part has succeeded.
// What a failure ends is the database's trigger (migration 0023).
import { findAwaitingChildren, notePartSucceeded, releaseChildren, type AwaitingChild } from '../../db/chains.ts';
import { outputAsInput, type Db, type Generation, type InputImageJson, type StoredOriginal } from '../../db/schema.ts';
import { providerFingerprint } from '../provider/cache-key.ts';
import { isModelId } from '../provider/models.ts';
import type { JobQueue } from '../queue.ts';
import { failGeneration, modelRequestOf, storedRequest } from './outcomes.ts';

/** The child's fingerprint now that its input is known; null when it may not be served from identical work. */
function fingerprintOf(child: AwaitingChild, input: InputImageJson, mayReuse: boolean): string | null {
  if (!mayReuse || !isModelId(child.model)) return null;
  return providerFingerprint(child.model, modelRequestOf(child.prompt, storedRequest.parse(child.request)), input.contentHash);
}

export async function advanceDependents(trx: Db, queue: JobQueue, succeeded: Generation, originals: readonly StoredOriginal[]): Promise<void> {
  await releaseChildrenOf(trx, succeeded, originals);
  const progress = await notePartSucceeded(trx, succeeded);
  if (progress?.complete) await queue.enqueueAssemble(trx, { generationId: progress.compositeId, assemble: true });
}

/**
 * The children waiting for this success's output get it as their input. The worker that
 * completes a generation calls it; so does the API for a child queued while its parent was
 * ending, which the worker's call could not see yet.
 */
export async function releaseChildrenOf(trx: Db, succeeded: Pick<Generation, 'id'>, originals: readonly StoredOriginal[]): Promise<void> {
  const children = await findAwaitingChildren(trx, succeeded.id);
  const released: { id: string; input: InputImageJson; fingerprint: string | null }[] = [];
  for (const child of children) {
    const outputIndex = child.parent_output ?? 0;
    const original = originals.find((candidate) => candidate.output_index === outputIndex);
    const input = original && outputAsInput(succeeded.id, original);
    if (!input) {
      await failGeneration(trx, child.id, undefined, 'input_failed', `generation ${succeeded.id} made no usable output ${outputIndex + 1} to build on`);
      continue;
    }
    released.push({ id: child.id, input, fingerprint: fingerprintOf(child, input, child.may_reuse) });
  }
  await releaseChildren(trx, released);
}
