// After an attempt sent a create and died (or timed out) before it stored the prediction's id,
// the prediction may exist. Before creating again, look for it among the provider's recent
// predictions: created after our create was sent, with exactly the input we send, and not
// already held by another generation. What remains: a create the provider receives after we
// looked (a request stuck in the network longer than the provider timeout plus margin).
import { isDeepStrictEqual } from 'node:util';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import type { ImageProvider, ListedPrediction } from '../provider/provider.ts';

/** Pages of the newest predictions to look through (the provider lists 100 per page). */
const MAX_PAGES = 5;
/** Clocks of Kiln and the provider may disagree this much. */
const CLOCK_SKEW_MS = 60_000;

export async function findEarlierPrediction(
  options: { db: Kysely<Database>; provider: ImageProvider },
  search: { sentAt: Date; input: Record<string, unknown> },
  signal: AbortSignal,
): Promise<ListedPrediction | undefined> {
  const since = search.sentAt.getTime() - CLOCK_SKEW_MS;
  const candidates: ListedPrediction[] = [];
  let page: string | undefined;
  for (let pages = 0; pages < MAX_PAGES; pages += 1) {
    const listed = await options.provider.listPredictions(page, signal);
    candidates.push(...listed.predictions.filter((prediction) => (prediction.createdAt?.getTime() ?? 0) >= since && isDeepStrictEqual(prediction.input, search.input)));
    const oldest = listed.predictions.at(-1)?.createdAt?.getTime();
    if (!listed.next || oldest === undefined || oldest < since) break;
    page = listed.next;
  }
  if (candidates.length === 0) return undefined;
  // Identical input may come from another generation: skip those already claimed.
  const claimed = await options.db
    .selectFrom('generations')
    .select('prediction_id')
    .where(
      'prediction_id',
      'in',
      candidates.map((candidate) => candidate.id),
    )
    .execute();
  const taken = new Set(claimed.map((row) => row.prediction_id));
  const free = candidates.filter((candidate) => !taken.has(candidate.id));
  // The one created closest after our create was sent.
  return free.sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0)).find((candidate) => (candidate.createdAt?.getTime() ?? 0) >= since);
}
