import { sql, type Kysely } from 'kysely';

// Credits: a tenant that has been granted credit has a balance, kept with a ledger of every
// movement (grant, reserve, charge, refund); a tenant never granted any is not metered. Amounts
// are millionths of a US dollar. A generation reserves its price when it is queued (in the
// statement that inserts it) and is settled when it ends, by the trigger below: charged on
// success (never more than it reserved), refunded on failure or cancel. So every way a
// generation can end settles it exactly once, in the transaction that ends it, and the balance
// can never go below zero (the CHECK refuses the reservation instead).
/** The settle function as this migration made it (a later one that replaces it restores it on the way down). */
export const SETTLE_0013 = sql.raw(`kiln_settle_generation() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      charged bigint;
    BEGIN
      -- Replicate bills an image model per image it delivered, a GPU-second model for the time it ran.
      NEW.provider_cost := CASE
        WHEN NEW.unit_price IS NULL THEN NULL
        WHEN NEW.price_per = 'image' THEN CASE WHEN NEW.state = 'succeeded' AND NEW.prediction_id IS NOT NULL THEN NEW.unit_price ELSE 0 END
        ELSE ceil(coalesce(NEW.predict_seconds, 0) * NEW.unit_price)::bigint
      END;
      IF NEW.reserved > 0 THEN
        charged := CASE WHEN NEW.state = 'succeeded' THEN least(NEW.reserved, coalesce(NEW.provider_cost, NEW.reserved)) ELSE 0 END;
        UPDATE credit_balances SET held = held - NEW.reserved, available = available + NEW.reserved - charged WHERE tenant_id = NEW.tenant_id;
        INSERT INTO credit_ledger (tenant_id, generation_id, kind, model, available_delta, held_delta, spent)
        VALUES (NEW.tenant_id, NEW.id, CASE WHEN NEW.state = 'succeeded' THEN 'charge' ELSE 'refund' END, NEW.model, NEW.reserved - charged, -NEW.reserved, charged);
      END IF;
      RETURN NEW;
    END
    $$;`);

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE credit_balances (
      tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
      -- What the tenant may still spend.
      available bigint NOT NULL CONSTRAINT credit_balances_available_not_negative CHECK (available >= 0),
      -- Reserved by generations that have not ended.
      held bigint NOT NULL DEFAULT 0 CONSTRAINT credit_balances_held_not_negative CHECK (held >= 0)
    );
    CREATE TABLE credit_ledger (
      id bigserial PRIMARY KEY,
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      generation_id uuid REFERENCES generations (id) ON DELETE SET NULL,
      kind text NOT NULL CONSTRAINT credit_ledger_kind_known CHECK (kind IN ('grant', 'reserve', 'charge', 'refund')),
      model text,
      -- The movement: the balance's available and held parts change by these; spent is what a charge took.
      available_delta bigint NOT NULL,
      held_delta bigint NOT NULL DEFAULT 0,
      spent bigint NOT NULL DEFAULT 0,
      note text,
      at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX credit_ledger_tenant_at ON credit_ledger (tenant_id, at);
    -- A generation's movements (usage reports; and its removal clears them).
    CREATE INDEX credit_ledger_generation ON credit_ledger (generation_id) WHERE generation_id IS NOT NULL;

    ALTER TABLE generations
      -- How its model is billed at the provider, and the price of one image or GPU second.
      ADD COLUMN price_per text CONSTRAINT generations_price_per_known CHECK (price_per IN ('image', 'gpu-second')),
      ADD COLUMN unit_price bigint,
      -- Held from its tenant's credit until it ends (0: the tenant is not metered).
      ADD COLUMN reserved bigint NOT NULL DEFAULT 0,
      -- The prediction's predict_time as the provider reported it.
      ADD COLUMN predict_seconds double precision,
      -- What the provider bills for it, set when it ends.
      ADD COLUMN provider_cost bigint;

    CREATE FUNCTION ${SETTLE_0013}
    CREATE TRIGGER generations_settle BEFORE UPDATE OF state ON generations
      FOR EACH ROW
      WHEN (NEW.state IN ('succeeded', 'failed', 'canceled') AND OLD.state NOT IN ('succeeded', 'failed', 'canceled'))
      EXECUTE FUNCTION kiln_settle_generation();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TRIGGER generations_settle ON generations;
    DROP FUNCTION kiln_settle_generation();
    ALTER TABLE generations DROP COLUMN price_per, DROP COLUMN unit_price, DROP COLUMN reserved,
      DROP COLUMN predict_seconds, DROP COLUMN provider_cost;
    DROP TABLE credit_ledger;
    DROP TABLE credit_balances;
  `.execute(db);
}
