import { sql, type Kysely } from 'kysely';

// Request rate limits per tenant and per subject: GCRA budgets (db/gcra.ts) kept in PostgreSQL,
// so that every API process shares them. A budget is one timestamp per key; a key with no row
// has its whole burst. Unlogged: a limit is no record worth a WAL write per request, and after
// a crash every budget simply starts full.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE UNLOGGED TABLE request_budgets (
      -- 't:<tenant id>' or 's:<tenant id>:<subject>'.
      key text PRIMARY KEY,
      -- The theoretical arrival time: each admitted request moves it on by one interval.
      tat timestamptz NOT NULL
    );
    ALTER TABLE tenants
      -- The tenant's own request limits; null: its tier's.
      ADD COLUMN requests_per_minute double precision CONSTRAINT tenants_requests_per_minute_positive CHECK (requests_per_minute > 0),
      ADD COLUMN request_burst integer CONSTRAINT tenants_request_burst_positive CHECK (request_burst > 0),
      -- A limit for each subject (end user, store) of the tenant; null: none.
      ADD COLUMN subject_requests_per_minute double precision CONSTRAINT tenants_subject_requests_per_minute_positive CHECK (subject_requests_per_minute > 0),
      ADD COLUMN subject_request_burst integer CONSTRAINT tenants_subject_request_burst_positive CHECK (subject_request_burst > 0);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE tenants DROP COLUMN requests_per_minute, DROP COLUMN request_burst,
      DROP COLUMN subject_requests_per_minute, DROP COLUMN subject_request_burst;
    DROP TABLE request_budgets;
  `.execute(db);
}
