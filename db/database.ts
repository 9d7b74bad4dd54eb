import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

export interface DatabaseOptions {
  connectionString: string;
  /** Pool size for this process's queries (pg-boss keeps a pool of its own). */
  maxConnections: number;
  /** How long a query waits for a new connection before it fails as "database unavailable" (default: forever). */
  connectTimeoutMs?: number;
  applicationName?: string;
  /** A connection was lost (the server went away, the network broke); the pool replaces it on demand. */
  onConnectionError?: (error: Error) => void;
}

export interface DatabaseHandle {
  db: Kysely<Database>;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections,
    application_name: options.applicationName ?? 'kiln',
    // 0 (pg's default) waits forever for a server that does not answer.
    connectionTimeoutMillis: options.connectTimeoutMs ?? 0,
    // Finds a connection whose server vanished without closing it (a network partition).
    keepAlive: true,
  });
  const report = (error: Error) => options.onConnectionError?.(error);
  // An idle client that loses its connection is also reported here; the listener below has
  // reported it already, but without a listener here the pool's 'error' would end the process.
  pool.on('error', () => {});
  // The pool stops listening to a client while it is checked out (kysely holds one for each
  // query and transaction), and a client that loses its connection then emits 'error' with
  // nobody listening, which would end the process. Listening for good on every client turns
  // that into what it should be: the query in flight rejects, and the broken client is
  // dropped when it is released (pg-pool discards clients that are no longer queryable).
  pool.on('connect', (client) => {
    client.on('error', report);
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    pool,
    // kysely's destroy() ends the pool it was given.
    close: () => db.destroy(),
  };
}

/** One round trip to the server: whether it answers now (throws if not). */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`SELECT 1`.execute(db);
}
