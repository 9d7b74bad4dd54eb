import { sql, type Kysely } from 'kysely';

// Waiting in Kiln's queue is not a failure: a generation has a deadline only when its caller
// asked for one. How long a prediction may run is its own limit, set when it is created.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      -- Null: the caller asked for no deadline, so the generation may wait in the queue as long as it takes.
      ALTER COLUMN deadline_at DROP NOT NULL,
      -- When the provider must have finished the prediction (its run limit, or the deadline if
      -- sooner); set with the prediction's id. Past it the prediction is canceled.
      ADD COLUMN prediction_deadline_at timestamptz,
      ADD CONSTRAINT generations_prediction_deadline_with_prediction
        CHECK (prediction_deadline_at IS NULL OR prediction_id IS NOT NULL);
    -- Predictions made before this were bounded by the generation's deadline alone.
    UPDATE generations SET prediction_deadline_at = deadline_at WHERE prediction_id IS NOT NULL;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    UPDATE generations SET deadline_at = created_at + interval '600 seconds' WHERE deadline_at IS NULL;
    ALTER TABLE generations
      DROP CONSTRAINT generations_prediction_deadline_with_prediction,
      DROP COLUMN prediction_deadline_at,
      ALTER COLUMN deadline_at SET NOT NULL;
  `.execute(db);
}
