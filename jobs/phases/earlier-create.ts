// After an attempt sent a create and died (or timed out) before it stored the prediction's id,
// the prediction may exist. Before creating again, look for it among the provider's recent
// predictions: created after our create was sent (within clock skew), for the same model and
// with exactly the input we send, and not held by another generation (a unique index on
// prediction_id makes that last check final). What remains: a create request that reaches the
// provider only after we looked, or one the list no longer shows.
import { isDeepStrictEqual } from 'node:util';
import type { Kysely } from 'kysely';
import { claimedPredictionIds } from '../../db/provider-work.ts';
import type { Database } from '../../db/schema.ts';
import type { ImageProvider, ListedPrediction } from '../provider/provider.ts';

/** How far the search goes; the numbers come from Kiln's config. */
export interface EarlierCreateSearch {
  /** Pages are read back to the create's time; this caps it (the provider lists 100 per page). */
  maxPages: number;
  /** Clocks of Kiln and the provider may disagree this much. */
  clockSkewMs: number;
}

export interface EarlierCreate {
  sentAt: Date;
  route: { model: string } | { version: string };
  input: Record<string, unknown>;
}

export async function findEarlierPrediction(
  options: { db: Kysely<Database>; provider: ImageProvider; search: EarlierCreateSearch },
  search: EarlierCreate,
  signal: AbortSignal,
): Promise<ListedPrediction | undefined> {
  const { maxPages, clockSkewMs } = options.search;
  const sentAt = search.sentAt.getTime();
  const since = sentAt - clockSkewMs;
  const candidates: ListedPrediction[] = [];
  let page: string | undefined;
  for (let pages = 0; pages < maxPages; pages += 1) {
    const listed = await options.provider.listPredictions(page, signal);
    candidates.push(...listed.predictions.filter((prediction) => (prediction.createdAt?.getTime() ?? 0) >= since && sameRequest(prediction, search)));
    const oldest = listed.predictions.at(-1)?.createdAt?.getTime();
    if (!listed.next || oldest === undefined || oldest < since) break;
    page = listed.next;
  }
  if (candidates.length === 0) return undefined;
  const taken = await claimedPredictionIds(options.db, candidates.map((candidate) => candidate.id));
  // The free one created nearest to when our create was sent, preferring those after it.
  const distance = (prediction: ListedPrediction) => {
    const created = prediction.createdAt?.getTime() ?? 0;
    return created >= sentAt ? created - sentAt : clockSkewMs + (sentAt - created);
  };
  return candidates.filter((candidate) => !taken.has(candidate.id)).sort((a, b) => distance(a) - distance(b))[0];
}

function sameRequest(prediction: ListedPrediction, search: EarlierCreate): boolean {
  const sameModel =
    'model' in search.route
      ? prediction.model === search.route.model
      : prediction.version === search.route.version || prediction.version?.endsWith(`:${search.route.version}`) === true;
  return sameModel && isDeepStrictEqual(prediction.input, search.input);
}
