import { sql, type Kysely } from 'kysely';

// The request that queued a generation, for the worker's log lines and trace spans: the row is
// the queue entry (the dispatcher makes its create job, a webhook its finish job), so what ties
// every job of a generation to its API call is kept here, once, rather than in each job's data.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      -- The API request's id (its x-request-id, or one Kiln made): on every log line about this generation.
      ADD COLUMN request_id text,
      -- The W3C traceparent of the API call's span; null when no trace was recorded.
      ADD COLUMN traceparent text;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE generations DROP COLUMN request_id, DROP COLUMN traceparent;`.execute(db);
}
