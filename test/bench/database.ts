// The database a benchmark runs against: a fresh database on DATABASE_URL's server (dropped
// afterwards), or an embedded PostgreSQL in a temp folder with default settings (removed
// afterwards). Also reads the server-side counters used to show the work per request.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../db/embedded-postgres.ts';
import type { Scope } from './harness.ts';
import { freePort } from './processes.ts';

export interface BenchDatabase {
  url: string;
  /** For the conditions line: where the server comes from and how durable it is. */
  server: { source: 'embedded' | 'DATABASE_URL'; version: string; fsync: string; synchronousCommit: string; sharedBuffers: string };
  /** One connection for the benchmark's own statements (setup, counters); closed by the scope. */
  admin: pg.Client;
}

export async function provisionDatabase(scope: Scope, progress: (line: string) => void): Promise<BenchDatabase> {
  const given = process.env.DATABASE_URL?.trim();
  let url: string;
  let source: BenchDatabase['server']['source'];
  if (given) {
    source = 'DATABASE_URL';
    url = await createFreshDatabase(given, scope);
    progress(`database: fresh database ${new URL(url).pathname.slice(1)} on DATABASE_URL's server`);
  } else {
    source = 'embedded';
    const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-pg-'));
    scope.defer(() => rm(dataDir, { recursive: true, force: true }));
    progress(`database: starting embedded PostgreSQL in ${dataDir} (default durability settings)`);
    // No settings override: fsync and synchronous_commit stay on, as in production.
    const embedded = await startEmbeddedPostgres({ dataDir, port: await freePort() });
    scope.defer(() => embedded.stop());
    url = embedded.connectionString;
  }
  const admin = new pg.Client({ connectionString: url, application_name: 'kiln-bench' });
  await admin.connect();
  scope.defer(() => admin.end());
  const { rows } = await admin.query<{ version: string; fsync: string; synchronous_commit: string; shared_buffers: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
            current_setting('synchronous_commit') AS synchronous_commit, current_setting('shared_buffers') AS shared_buffers`,
  );
  const settings = rows[0];
  if (!settings) throw new Error('could not read the database server settings');
  return {
    url,
    admin,
    server: { source, version: settings.version, fsync: settings.fsync, synchronousCommit: settings.synchronous_commit, sharedBuffers: settings.shared_buffers },
  };
}

async function createFreshDatabase(serverUrl: string, scope: Scope): Promise<string> {
  const name = `kiln_bench_${randomBytes(5).toString('hex')}`;
  const maintenance = new pg.Client({ connectionString: serverUrl });
  await maintenance.connect();
  try {
    await maintenance.query(`CREATE DATABASE ${name}`);
  } finally {
    await maintenance.end();
  }
  scope.defer(async () => {
    const dropper = new pg.Client({ connectionString: serverUrl });
    await dropper.connect();
    try {
      // FORCE: a child killed mid-run may leave connections behind.
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await dropper.end();
    }
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface DatabaseCounters {
  /** The next transaction id: its growth counts transactions that wrote. */
  nextTransactionId: number;
  /** The WAL position in bytes: its growth is the WAL written. */
  walBytes: number;
}

/**
 * Server-wide counters that are exact at any moment (unlike pg_stat_*, which backends report
 * with a delay of up to seconds). Server-wide, so they are only meaningful while nothing but the
 * server under test writes — true for the embedded server.
 */
export async function readCounters(admin: pg.Client): Promise<DatabaseCounters> {
  const { rows } = await admin.query<{ next_xid: string; wal_bytes: string }>(
    `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid,
            pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text AS wal_bytes`,
  );
  const row = rows[0];
  if (!row) throw new Error('could not read the WAL position');
  return { nextTransactionId: Number(row.next_xid), walBytes: Number(row.wal_bytes) };
}

/** A checkpoint before each measured run, so one run's dirty pages are not flushed during the next. */
export async function checkpoint(admin: pg.Client): Promise<boolean> {
  return admin.query('CHECKPOINT').then(
    () => true,
    () => false, // needs superuser or pg_checkpoint; DATABASE_URL may not grant it
  );
}
