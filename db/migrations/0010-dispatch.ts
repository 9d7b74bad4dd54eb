import { sql, type Kysely } from 'kysely';

// The dispatcher (jobs/dispatch/) hands queued generations to the create phase at the pace of
// the provider's create budget, fairly among lanes (tenants). A queued row is the queue entry;
// `dispatched_at` says it has been handed on (its create job exists). Lanes' virtual times
// (weighted fair queueing) live in `dispatch_lanes`, the shared virtual clock in `dispatch_clock`.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE generations ADD COLUMN dispatched_at timestamptz;
    -- Every row written before the dispatcher got its create job when it was inserted.
    UPDATE generations SET dispatched_at = created_at;
    -- What the dispatcher reads each tick: the waiting, undispatched work of each lane...
    CREATE INDEX generations_waiting ON generations (tenant_id, created_at, id)
      WHERE state = 'queued' AND dispatched_at IS NULL;
    -- ...and each tenant's work in progress (for its cap).
    CREATE INDEX generations_in_progress ON generations (tenant_id)
      WHERE state IN ('queued', 'running') AND dispatched_at IS NOT NULL;
    CREATE TABLE dispatch_lanes (
      lane text PRIMARY KEY,
      -- The lane's next turn in virtual time: each dispatch moves it on by 1 / weight.
      pass double precision NOT NULL
    );
    CREATE TABLE dispatch_clock (
      id int PRIMARY KEY CHECK (id = 1),
      -- The virtual time of the latest dispatch; a lane that was idle starts from here.
      clock double precision NOT NULL DEFAULT 0
    );
    INSERT INTO dispatch_clock (id) VALUES (1);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    DROP TABLE dispatch_clock;
    DROP TABLE dispatch_lanes;
    DROP INDEX generations_in_progress;
    DROP INDEX generations_waiting;
    ALTER TABLE generations DROP COLUMN dispatched_at;
  `.execute(db);
}
