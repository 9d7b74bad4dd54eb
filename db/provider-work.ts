// What the worker records about a generation's provider work, beyond its stage events: the
// create it is about to send (so a later attempt knows one may exist), the provider's latest
// status (so a webhook and a poll that bring the same news act on it once), and which
// webhook deliveries were handled. Writes are fenced by attempt, like those in generations.ts.
import { sql } from 'kysely';
import { FINAL_PREDICTION_STATUSES, type Db, type Generation, type PredictionStatus } from './schema.ts';

/** The generation as the worker needs it: no tenant filter, workers serve every tenant. */
export async function findGenerationForWork(db: Db, id: string): Promise<Generation | undefined> {
  return db.selectFrom('generations').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Marks that this attempt is about to send a create. False when the attempt no longer owns
 * the generation (canceled, superseded) or a prediction is already stored.
 */
export async function recordCreateIntent(db: Db, id: string, attempt: number, settleMs: number): Promise<boolean> {
  const row = await db
    .updateTable('generations')
    .set({
      create_sent_attempt: attempt,
      create_sent_at: sql<Date>`clock_timestamp()`,
      create_settles_at: sql<Date>`clock_timestamp() + make_interval(secs => ${settleMs / 1000})`,
    })
    .where('id', '=', id)
    .where('attempt', '=', attempt)
    .where('state', '=', 'running')
    .where('prediction_id', 'is', null)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** The create was refused before it reached the provider: nothing can exist to look for. */
export async function clearCreateIntent(db: Db, id: string, attempt: number): Promise<void> {
  await db
    .updateTable('generations')
    .set({ create_sent_attempt: null, create_sent_at: null, create_settles_at: null })
    .where('id', '=', id)
    .where('create_sent_attempt', '=', attempt)
    .execute();
}

/** The create came back without an answer we could use (timeout, 5xx): it has settled, a prediction may exist. */
export async function markCreateSettled(db: Db, id: string, attempt: number): Promise<void> {
  await db
    .updateTable('generations')
    .set({ create_settles_at: sql<Date>`clock_timestamp()` })
    .where('id', '=', id)
    .where('create_sent_attempt', '=', attempt)
    .execute();
}

/**
 * Records the provider's status (and progress) of the attempt's prediction if it is news. True
 * for the first to bring it; a final status is news once, and nothing moves after it.
 */
export async function recordProviderStatus(
  db: Db,
  input: { id: string; attempt: number; predictionId: string; status: PredictionStatus; progress: number | null; final: boolean; predictSeconds: number | null },
): Promise<boolean> {
  const row = await db
    .updateTable('generations')
    // The predict time comes with the final status: what a GPU-second model is billed for.
    .set({ provider_status: input.status, provider_progress: input.progress, ...(input.final ? { predict_seconds: input.predictSeconds } : {}) })
    .where('id', '=', input.id)
    .where('attempt', '=', input.attempt)
    .where('prediction_id', '=', input.predictionId)
    .where('state', '=', 'running')
    .where((eb) => eb.or([eb('provider_status', 'is', null), eb('provider_status', 'not in', FINAL_PREDICTION_STATUSES)]))
    .where(
      input.final
        ? sql<boolean>`true`
        : sql<boolean>`(provider_status IS DISTINCT FROM ${input.status} OR provider_progress IS DISTINCT FROM ${input.progress}::real)`,
    )
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * A new attempt takes over a stored prediction: what earlier attempts heard of it is forgotten,
 * so that its status — even a final one already seen — is news to this attempt.
 */
export async function forgetProviderStatus(db: Db, id: string, attempt: number): Promise<void> {
  await db.updateTable('generations').set({ provider_status: null, provider_progress: null }).where('id', '=', id).where('attempt', '=', attempt).execute();
}

/**
 * Makes poll number `next` the one that should run next: unconditionally for the first poll of
 * an attempt (`after` undefined), otherwise only if poll `after` was still the current one — so of
 * two runs of the same poll job, only one schedules a successor.
 */
export async function advancePollSeq(db: Db, input: { id: string; attempt: number; after: number | undefined; next: number }): Promise<boolean> {
  let update = db.updateTable('generations').set({ poll_seq: input.next }).where('id', '=', input.id).where('attempt', '=', input.attempt);
  if (input.after !== undefined) update = update.where('poll_seq', '=', input.after);
  return (await update.returning('id').executeTakeFirst()) !== undefined;
}

/** Of these prediction ids, those a generation already holds. */
export async function claimedPredictionIds(db: Db, predictionIds: readonly string[]): Promise<Set<string>> {
  if (predictionIds.length === 0) return new Set();
  const rows = await db.selectFrom('generations').select('prediction_id').where('prediction_id', 'in', predictionIds).execute();
  return new Set(rows.flatMap((row) => (row.prediction_id === null ? [] : [row.prediction_id])));
}

/** Predictions the provider is working on for us (to space polls within the read budget). */
export async function countAwaitingProvider(db: Db): Promise<number> {
  const row = await db
    .selectFrom('generations')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('state', '=', 'running')
    .where('prediction_id', 'is not', null)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** True the first time a webhook-id is seen. */
export async function recordWebhookDelivery(db: Db, webhookId: string): Promise<boolean> {
  const row = await db.insertInto('webhook_deliveries').values({ id: webhookId }).onConflict((conflict) => conflict.column('id').doNothing()).returning('id').executeTakeFirst();
  return row !== undefined;
}

/** Webhook ids are only needed while the provider may still retry (about a minute). */
export async function pruneWebhookDeliveries(db: Db, olderThanSeconds: number): Promise<void> {
  await db.deleteFrom('webhook_deliveries').where('received_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanSeconds})`).execute();
}

export async function seenWebhookDelivery(db: Db, webhookId: string): Promise<boolean> {
  const row = await db.selectFrom('webhook_deliveries').select('id').where('id', '=', webhookId).executeTakeFirst();
  return row !== undefined;
}
