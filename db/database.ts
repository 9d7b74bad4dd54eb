import { createHash } from 'node:crypto';
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
    prepareMarkedStatements(client);
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

const PREPARED_MARK = '/* kiln:prepared */';

/**
 * Starts a statement that is prepared once per connection, so that its plan is cached: for the
 * few hot statements whose planning costs more than running them (the dispatcher's tick read is
 * planned in about 2.5 ms and runs in under 1). Its text must not vary between calls (values go
 * in as parameters), which a statement built from fixed fragments guarantees.
 */
export const PREPARED = sql.raw(`${PREPARED_MARK} `);

/** Sends statements that start with PREPARED as named (prepared) statements; all others as they were. */
function prepareMarkedStatements(client: pg.PoolClient): void {
  const names = new Map<string, string>();
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (name === undefined) {
      name = `kiln_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
      names.set(text, name);
    }
    return name;
  };
  const query: (...args: unknown[]) => unknown = client.query.bind(client);
  const prepared = (...args: unknown[]) => {
    const [text, values, ...rest] = args;
    if (typeof text === 'string' && text.startsWith(PREPARED_MARK)) return query({ name: nameOf(text), text, values }, ...rest);
    return query(...args);
  };
  client.query = prepared as typeof client.query;
}
