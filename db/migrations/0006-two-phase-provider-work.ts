import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      -- When it must be finished by; past it the prediction is canceled and the generation fails.
      ADD COLUMN deadline_at timestamptz,
      -- Set just before a create is sent and cleared once its prediction id is stored: if it is
      -- still set when a later attempt starts, the earlier create may have reached the provider.
      ADD COLUMN create_sent_attempt integer,
      ADD COLUMN create_sent_at timestamptz,
      -- By then that create has surely settled (it answered, or our bound on it cut it off).
      ADD COLUMN create_settles_at timestamptz,
      -- The provider's last known status of the prediction (starting, processing, a final one).
      ADD COLUMN provider_status text,
      ADD COLUMN provider_progress real,
      -- The number of the one poll that should run next: a poll job that runs twice (its worker
      -- died after it had scheduled the next) finds it has been superseded.
      ADD COLUMN poll_seq integer;
    -- A prediction belongs to one generation, even when several look for a lost one at once.
    CREATE UNIQUE INDEX generations_prediction_id ON generations (prediction_id) WHERE prediction_id IS NOT NULL;
    -- Predictions the provider is working on: counted to space the polls within the read budget.
    CREATE INDEX generations_awaiting_provider ON generations (model) WHERE state = 'running' AND prediction_id IS NOT NULL;

    -- Webhook deliveries already handled, by their webhook-id (the same across retries).
    CREATE TABLE webhook_deliveries (
      id text PRIMARY KEY,
      received_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE webhook_deliveries;
    DROP INDEX generations_awaiting_provider;
    DROP INDEX generations_prediction_id;
    ALTER TABLE generations
      DROP COLUMN deadline_at,
      DROP COLUMN create_sent_attempt,
      DROP COLUMN create_sent_at,
      DROP COLUMN create_settles_at,
      DROP COLUMN provider_status,
      DROP COLUMN provider_progress,
      DROP COLUMN poll_seq;
  `.execute(db);
}
