import { sql, type Kysely } from 'kysely';

// Generations that build on generations.
// - A chain: a generation may derive from another's output (`parent_id`, and which output:
//   `parent_output`). Every member of a chain carries its root's id (`chain_id`; the root gets
//   it when its first child is made), so "the latest success of a chain" is one index probe.
// - Parts: a generation that does no provider work of its own (a composite: several outputs of a
//   model that makes one image a prediction, or the product-photo optimiser) is made of parts,
//   each an ordinary generation with its own prediction, price and events (`part_of`,
//   `part_index`). The composite is delivered from its parts once they have all succeeded.
// - `awaiting` says why a queued generation is not waiting work yet: 'input', its parent has not
//   succeeded, so its input image does not exist; 'parts', a composite waiting for its parts.
//   The dispatcher's waiting indexes exclude both; the deadline still applies to them.
// When a generation fails or is canceled, the trigger below ends what depended on it, in the
// same transaction: children awaiting its output fail (`input_failed`), the composite it is a
// part of fails with its reason, and a composite's parts that are still queued are canceled
// (running ones finish: their prediction is already paid for).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      -- Pointers, not foreign keys (like served_from_id): retention may prune a parent first.
      ADD COLUMN parent_id uuid,
      ADD COLUMN parent_output smallint,
      ADD COLUMN chain_id uuid,
      ADD COLUMN part_of uuid,
      ADD COLUMN part_index smallint,
      ADD COLUMN awaiting text CONSTRAINT generations_awaiting_known CHECK (awaiting IN ('input', 'parts')),
      ADD CONSTRAINT generations_parent_whole CHECK ((parent_id IS NULL) = (parent_output IS NULL)),
      ADD CONSTRAINT generations_part_whole CHECK ((part_of IS NULL) = (part_index IS NULL));

    CREATE INDEX generations_children ON generations (parent_id, created_at) WHERE parent_id IS NOT NULL;
    CREATE INDEX generations_parts ON generations (part_of, part_index) WHERE part_of IS NOT NULL;
    CREATE INDEX generations_chain_latest ON generations (chain_id, finished_at DESC, id DESC) WHERE chain_id IS NOT NULL AND state = 'succeeded';

    -- Held generations are not waiting work.
    DROP INDEX generations_waiting;
    DROP INDEX generations_waiting_by_subject;
    CREATE INDEX generations_waiting ON generations (tenant_id, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL AND awaiting IS NULL;
    CREATE INDEX generations_waiting_by_subject ON generations (tenant_id, subject, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL AND awaiting IS NULL;

    CREATE FUNCTION kiln_end_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      ended text := CASE NEW.state WHEN 'canceled' THEN 'was canceled' ELSE 'failed: ' || coalesce(NEW.error_message, NEW.error_code, '') END;
    BEGIN
      -- Children waiting for its output will never get it.
      WITH failed AS (
        UPDATE generations SET state = 'failed', stage = 'failed', finished_at = now(), updated_at = now(), awaiting = NULL,
          error_code = 'input_failed', error_message = 'the generation it builds on (' || NEW.id || ') ' || ended
        WHERE parent_id = NEW.id AND state = 'queued' AND awaiting = 'input'
        RETURNING id, tenant_id, batch_id, subject, error_code, error_message
      )
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'failed', jsonb_build_object('code', error_code, 'message', error_message) FROM failed;

      -- A part that ends without success ends its composite, for the same reason.
      IF NEW.part_of IS NOT NULL THEN
        WITH ended_composite AS (
          UPDATE generations SET state = CASE NEW.state WHEN 'canceled' THEN 'canceled' ELSE 'failed' END,
            stage = CASE NEW.state WHEN 'canceled' THEN 'canceled' ELSE 'failed' END,
            finished_at = now(), updated_at = now(), awaiting = NULL,
            error_code = CASE NEW.state WHEN 'canceled' THEN NULL ELSE NEW.error_code END,
            error_message = CASE NEW.state WHEN 'canceled' THEN NULL ELSE 'step ' || (NEW.part_index + 1) || ' (' || NEW.model || ') failed: ' || coalesce(NEW.error_message, '') END
          WHERE id = NEW.part_of AND state IN ('queued', 'running')
          RETURNING id, tenant_id, batch_id, subject, stage, error_code, error_message
        )
        INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
        SELECT id, tenant_id, batch_id, subject, stage,
          CASE WHEN error_code IS NULL THEN jsonb_build_object('partId', NEW.id)
            ELSE jsonb_build_object('code', error_code, 'message', error_message, 'partId', NEW.id) END
        FROM ended_composite;
      END IF;

      -- A composite that ends without success cancels its parts not yet running.
      WITH canceled AS (
        UPDATE generations SET state = 'canceled', stage = 'canceled', finished_at = now(), updated_at = now(), awaiting = NULL
        WHERE part_of = NEW.id AND state = 'queued'
        RETURNING id, tenant_id, batch_id, subject
      )
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'canceled', jsonb_build_object('because', 'its composite ' || NEW.id || ' ' || ended) FROM canceled;
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER generations_end_dependents AFTER UPDATE OF state ON generations
      FOR EACH ROW
      WHEN (NEW.state IN ('failed', 'canceled') AND OLD.state NOT IN ('succeeded', 'failed', 'canceled'))
      EXECUTE FUNCTION kiln_end_dependents();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER generations_end_dependents ON generations;
    DROP FUNCTION kiln_end_dependents();
    -- Held generations cannot run without what they wait for.
    UPDATE generations SET state = 'canceled', stage = 'canceled', finished_at = now(), awaiting = NULL WHERE awaiting IS NOT NULL AND state = 'queued';
    DROP INDEX generations_waiting;
    DROP INDEX generations_waiting_by_subject;
    CREATE INDEX generations_waiting ON generations (tenant_id, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL;
    CREATE INDEX generations_waiting_by_subject ON generations (tenant_id, subject, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL;
    DROP INDEX generations_chain_latest;
    DROP INDEX generations_parts;
    DROP INDEX generations_children;
    ALTER TABLE generations DROP CONSTRAINT generations_part_whole, DROP CONSTRAINT generations_parent_whole,
      DROP COLUMN awaiting, DROP COLUMN part_index, DROP COLUMN part_of, DROP COLUMN chain_id, DROP COLUMN parent_output, DROP COLUMN parent_id;
  `.execute(db);
}
