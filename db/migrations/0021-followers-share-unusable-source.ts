import { sql, type Kysely } from 'kysely';

// A leader that fails because its input image cannot be used (`unusable_source`) fails its
// followers with it, as one the provider refused does: they carry the very same input, so
// running each on its own would only fail the same way, once per follower. Other failures still
// send the followers back to the queue as their own work (migration 0014).
const releaseFollowers = (failWithLeader: readonly string[]) =>
  sql.raw(`CREATE OR REPLACE FUNCTION kiln_release_followers() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.error_code IN (${failWithLeader.map((code) => `'${code}'`).join(', ')}) THEN
        -- The input itself is at fault: the followers' is the same.
        WITH failed AS (
          UPDATE generations SET state = 'failed', stage = 'failed', finished_at = now(), updated_at = now(),
            error_code = NEW.error_code,
            error_message = CASE NEW.error_code WHEN 'provider_rejected' THEN 'the identical request it joined was refused: '
              ELSE 'the identical request it joined could not use its image: ' END || coalesce(NEW.error_message, '')
          WHERE served_from_id = NEW.id AND state = 'queued' AND served_from_kind = 'joined'
          RETURNING id, tenant_id, batch_id, subject, error_code, error_message
        )
        INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
        SELECT id, tenant_id, batch_id, subject, 'failed', jsonb_build_object('code', error_code, 'message', error_message) FROM failed;
      ELSE
        -- Not the input's fault: each follower is its own work again, at its place in its lane.
        WITH released AS (
          UPDATE generations SET served_from_id = NULL, served_from_kind = NULL, stage = 'cache.released', updated_at = now()
          WHERE served_from_id = NEW.id AND state = 'queued' AND served_from_kind = 'joined'
          RETURNING id, tenant_id, batch_id, subject
        )
        INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
        SELECT id, tenant_id, batch_id, subject, 'cache.released', jsonb_build_object('generationId', NEW.id, 'because', NEW.state) FROM released;
        IF FOUND THEN
          PERFORM pg_notify('kiln_dispatch', '');
        END IF;
      END IF;
      RETURN NULL;
    END
    $$`);

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`${releaseFollowers(['provider_rejected', 'unusable_source'])}`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`${releaseFollowers(['provider_rejected'])}`.execute(db);
}
