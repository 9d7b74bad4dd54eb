import { sql, type Kysely } from 'kysely';

// The dispatcher at the scale of a 50,000-generation backlog: each tick reads the head of each
// lane from an index instead of sorting the lane, finds the lanes by skipping through an index
// instead of counting every waiting row, and finds work past its deadline without a scan.
//
// `dispatch_order` is a generation's place in its lane, fixed when it is queued: its creation
// time, earlier by its priority's worth of waiting (jobs/dispatch/select.ts's agedOrderKey). As a
// stored column it can be indexed; the aging setting applies to work queued after it changes.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations ADD COLUMN dispatch_order timestamptz;
    -- 30 s per priority point was the only aging there was before this column.
    UPDATE generations SET dispatch_order = created_at - make_interval(secs => priority * 30);
    ALTER TABLE generations ALTER COLUMN dispatch_order SET NOT NULL;

    DROP INDEX generations_waiting;
    -- A lane's head: a tenant's waiting work in dispatch order...
    CREATE INDEX generations_waiting ON generations (tenant_id, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    -- ...and a subject's, for tenants that share by subject (also how their subjects are found).
    CREATE INDEX generations_waiting_by_subject ON generations (tenant_id, subject, dispatch_order, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    -- Waiting work whose caller's deadline has passed: failed by the dispatcher, never sent.
    CREATE INDEX generations_waiting_deadline ON generations (deadline_at)
      WHERE state = 'queued' AND dispatched_at IS NULL AND deadline_at IS NOT NULL;
    -- A model's recent run times, for the queue estimate's finish time (read on every status).
    CREATE INDEX generations_recent_successes ON generations (model, finished_at) WHERE state = 'succeeded';
    -- The queue lanes of before the dispatcher; nothing reads this any more.
    DROP INDEX generations_queued_lane;

    ALTER TABLE tenants
      -- Generations this tenant may have dispatched or running at once; null: the configured default.
      ADD COLUMN in_progress_cap integer CONSTRAINT tenants_in_progress_cap_positive CHECK (in_progress_cap > 0);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE tenants DROP COLUMN in_progress_cap;
    CREATE INDEX generations_queued_lane ON generations (model, priority DESC, created_at, id) WHERE state = 'queued';
    DROP INDEX generations_recent_successes;
    DROP INDEX generations_waiting_deadline;
    DROP INDEX generations_waiting_by_subject;
    DROP INDEX generations_waiting;
    CREATE INDEX generations_waiting ON generations (tenant_id, created_at, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    ALTER TABLE generations DROP COLUMN dispatch_order;
  `.execute(db);
}
