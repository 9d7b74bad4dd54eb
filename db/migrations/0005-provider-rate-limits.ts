import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- One row per provider budget (e.g. Replicate's creates, and everything else), shared by
    -- every worker process. Kept as GCRA state: 'tat' is the theoretical arrival time of the
    -- next call if calls were evenly spaced; see db/rate-limits.ts.
    CREATE TABLE provider_rate_limits (
      name text PRIMARY KEY,
      tat timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
      -- When the last granted call may go (it may lie a little in the future: a reservation).
      last_slot timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
      -- Set after the provider answers 429: nobody calls before then.
      paused_until timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
      -- Counters for the stats: slots handed out and 429s seen since the row was created.
      granted bigint NOT NULL DEFAULT 0,
      throttled bigint NOT NULL DEFAULT 0
    );
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE provider_rate_limits;`.execute(db);
}
