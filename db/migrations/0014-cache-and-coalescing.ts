import { sql, type Kysely } from 'kysely';
import { SETTLE_0013 } from './0013-credits.ts';

// Cache and coalescing: a request whose provider input is identical to an earlier one of its
// tenant (same model route and input: `fingerprint`, sha256 of canonical JSON) is served from
// it instead of calling the provider — from an earlier success (`served_from_kind` 'cache') or
// by joining identical work still in flight ('joined'). `served_from_id` names the generation
// it is served from; a follower waits queued, outside the dispatcher's waiting work (the
// waiting indexes exclude it), until that one ends:
// - succeeded: the worker that completes it queues the followers' copies in the same
//   transaction (they render their own variants from its original);
// - failed with provider_rejected: the provider refused this very input, so the followers fail
//   with it (the trigger below);
// - failed otherwise, or canceled: the followers go back to the queue as their own work, at
//   the place in their lane they were queued at (the trigger below).
// A generation served from another is charged its `cache_price` (settle trigger, replaced here)
// and costs nothing at the provider.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations
      ADD COLUMN fingerprint text,
      -- Whether it may be served from an identical generation (its cache mode, and a seed unless it opted in without).
      ADD COLUMN may_reuse boolean NOT NULL DEFAULT false,
      -- A pointer, not a foreign key: a tenant's generations go together, and the insert stays one index lighter.
      ADD COLUMN served_from_id uuid,
      ADD COLUMN served_from_kind text CONSTRAINT generations_served_from_kind_known CHECK (served_from_kind IN ('cache', 'joined')),
      -- What it is charged when served from another (micro-dollars).
      ADD COLUMN cache_price bigint,
      ADD CONSTRAINT generations_served_from_whole CHECK ((served_from_id IS NULL) = (served_from_kind IS NULL));

    -- The one lookup of a generate: a tenant's own work with this input, in flight or succeeded.
    CREATE INDEX generations_cache ON generations (tenant_id, fingerprint)
      WHERE served_from_id IS NULL AND fingerprint IS NOT NULL AND state IN ('queued', 'running', 'succeeded');
    -- The followers waiting for a generation to end.
    CREATE INDEX generations_followers ON generations (served_from_id) WHERE served_from_id IS NOT NULL AND state = 'queued';

    -- Followers are not waiting work: the dispatcher never hands them a create slot.
    DROP INDEX generations_waiting;
    DROP INDEX generations_waiting_by_subject;
    CREATE INDEX generations_waiting ON generations (tenant_id, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL;
    CREATE INDEX generations_waiting_by_subject ON generations (tenant_id, subject, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL AND served_from_id IS NULL;

    -- One settling movement of a generation's reservation: the balance and its ledger row.
    CREATE FUNCTION kiln_settle_credit(p_tenant uuid, p_generation uuid, p_model text, p_reserved bigint, p_charged bigint, p_succeeded boolean)
    RETURNS void LANGUAGE sql AS $$
      UPDATE credit_balances SET held = held - p_reserved, available = available + p_reserved - p_charged WHERE tenant_id = p_tenant;
      INSERT INTO credit_ledger (tenant_id, generation_id, kind, model, available_delta, held_delta, spent)
      VALUES (p_tenant, p_generation, CASE WHEN p_succeeded THEN 'charge' ELSE 'refund' END, p_model, p_reserved - p_charged, -p_reserved, p_charged);
    $$;

    CREATE OR REPLACE FUNCTION kiln_settle_generation() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      -- Replicate bills an image model per image it delivered, a GPU-second model for the time it
      -- ran; a generation served from another made no call of its own.
      NEW.provider_cost := CASE
        WHEN NEW.unit_price IS NULL THEN NULL
        WHEN NEW.served_from_id IS NOT NULL THEN 0
        WHEN NEW.price_per = 'image' THEN CASE WHEN NEW.state = 'succeeded' AND NEW.prediction_id IS NOT NULL THEN NEW.unit_price ELSE 0 END
        ELSE ceil(coalesce(NEW.predict_seconds, 0) * NEW.unit_price)::bigint
      END;
      IF NEW.reserved > 0 THEN
        -- Charged on success: its cache price when served from another, else what the provider
        -- billed; never more than it reserved. Refunded otherwise.
        PERFORM kiln_settle_credit(NEW.tenant_id, NEW.id, NEW.model, NEW.reserved, CASE
          WHEN NEW.state <> 'succeeded' THEN 0
          WHEN NEW.served_from_id IS NOT NULL THEN least(NEW.reserved, coalesce(NEW.cache_price, NEW.reserved))
          ELSE least(NEW.reserved, coalesce(NEW.provider_cost, NEW.reserved))
        END, NEW.state = 'succeeded');
      END IF;
      RETURN NEW;
    END
    $$;

    CREATE FUNCTION kiln_release_followers() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.error_code = 'provider_rejected' THEN
        -- The provider refused this very input: it would refuse the followers' too.
        WITH failed AS (
          UPDATE generations SET state = 'failed', stage = 'failed', finished_at = now(), updated_at = now(),
            error_code = NEW.error_code, error_message = 'the identical request it joined was refused: ' || coalesce(NEW.error_message, '')
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
    $$;
    CREATE TRIGGER generations_release_followers AFTER UPDATE OF state ON generations
      FOR EACH ROW
      WHEN (NEW.state IN ('failed', 'canceled') AND OLD.state NOT IN ('succeeded', 'failed', 'canceled'))
      EXECUTE FUNCTION kiln_release_followers();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER generations_release_followers ON generations;
    DROP FUNCTION kiln_release_followers();
    CREATE OR REPLACE FUNCTION ${SETTLE_0013}
    DROP FUNCTION kiln_settle_credit(uuid, uuid, text, bigint, bigint, boolean);
    DROP INDEX generations_waiting;
    DROP INDEX generations_waiting_by_subject;
    -- Followers (if any) become waiting work again, as every generation was before.
    UPDATE generations SET served_from_id = NULL, served_from_kind = NULL WHERE served_from_id IS NOT NULL;
    CREATE INDEX generations_waiting ON generations (tenant_id, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    CREATE INDEX generations_waiting_by_subject ON generations (tenant_id, subject, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    DROP INDEX generations_followers;
    DROP INDEX generations_cache;
    ALTER TABLE generations DROP CONSTRAINT generations_served_from_whole, DROP COLUMN cache_price, DROP COLUMN served_from_kind,
      DROP COLUMN served_from_id, DROP COLUMN may_reuse, DROP COLUMN fingerprint;
  `.execute(db);
}
