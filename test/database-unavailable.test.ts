// What counts as "database unavailable": real failures from pg where they are cheap to cause,
// and the shapes of the rest (SQLSTATEs, wrapped and aggregated errors).
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import pg from 'pg';
import { isDatabaseUnavailable } from '../db/database-unavailable.ts';
import { createTestDatabase } from './support/kiln.ts';
import { freePort } from './support/ports.ts';

/** The error a pg call fails with (the client's own 'error' events are heard, as Kiln hears them). */
async function failureOf(run: (client: pg.Client) => Promise<unknown>, config: pg.ClientConfig): Promise<unknown> {
  const client = new pg.Client(config);
  client.on('error', () => {});
  try {
    await run(client);
  } catch (error) {
    return error;
  } finally {
    await client.end().catch(() => {});
  }
  assert.fail('expected the call to fail');
}

const withCode = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it('recognises a refused connection', async () => {
    const error = await failureOf((client) => client.connect(), { host: '127.0.0.1', port: await freePort() });
    assert.equal((error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal(isDatabaseUnavailable(error), true);
  });

  it('recognises a server that accepts but never answers (connect timeout)', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const pool = new pg.Pool({ host: '127.0.0.1', port, connectionTimeoutMillis: 200 });
      const error = await pool.query('SELECT 1').then(
        () => assert.fail('expected a timeout'),
        (failure: unknown) => failure,
      );
      await pool.end();
      assert.equal(isDatabaseUnavailable(error), true, String(error));
    } finally {
      silent.close();
    }
  });

  it('recognises a session ended by the server (57P01), and a query on the broken client after it', async () => {
    const url = await createTestDatabase();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const victim = new pg.Client({ connectionString: url });
      victim.on('error', () => {});
      await victim.connect();
      const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const sleeping = victim.query('SELECT pg_sleep(30)').then(
        () => assert.fail('expected the session to be ended'),
        (failure: unknown) => failure,
      );
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      const ended = await sleeping;
      assert.equal((ended as { code?: string }).code, '57P01');
      assert.equal(isDatabaseUnavailable(ended), true);
      const afterwards = await victim.query('SELECT 1').then(
        () => assert.fail('expected the broken client to refuse'),
        (failure: unknown) => failure,
      );
      assert.equal(isDatabaseUnavailable(afterwards), true, String(afterwards));
      await victim.end().catch(() => {});
    } finally {
      await admin.end();
    }
  });

  it('leaves errors about the query itself alone', async () => {
    const url = await createTestDatabase();
    const syntax = await failureOf(async (client) => {
      await client.connect();
      await client.query('SELEC 1');
    }, { connectionString: url });
    assert.equal((syntax as { code?: string }).code, '42601');
    assert.equal(isDatabaseUnavailable(syntax), false);
    assert.equal(isDatabaseUnavailable(withCode('23505', 'duplicate key value violates unique constraint')), false);
    assert.equal(isDatabaseUnavailable(withCode('57014', 'canceling statement due to statement timeout')), false);
    assert.equal(isDatabaseUnavailable(new Error('Client was closed and is not queryable')), false, 'our own shutdown is no outage');
  });

  it('recognises every connection-exception SQLSTATE and the shutdown ones', () => {
    for (const code of ['08000', '08003', '08006', '08001', '08004', '08P01', '57P01', '57P02', '57P03']) {
      assert.equal(isDatabaseUnavailable(withCode(code)), true, code);
    }
    assert.equal(isDatabaseUnavailable(withCode('57P04')), false, 'database dropped: not coming back');
  });

  it('looks through causes, aggregated errors and what pg-boss adds to a message', () => {
    assert.equal(isDatabaseUnavailable(new Error('store failed', { cause: withCode('ECONNRESET') })), true);
    assert.equal(isDatabaseUnavailable(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')], 'connect failed')), true);
    assert.equal(isDatabaseUnavailable(new Error('Connection terminated unexpectedly (Queue: kiln-poll, Worker: 1f2e)')), true);
    // What pg-boss emits for a worker's failed fetch: a copy of the error, not an Error.
    const fromWorker = new Error('Connection terminated unexpectedly (Queue: kiln-poll, Worker: 1f2e)');
    assert.equal(isDatabaseUnavailable({ ...fromWorker, message: fromWorker.message, stack: fromWorker.stack, queue: 'kiln-poll', worker: '1f2e' }), true);
    assert.equal(isDatabaseUnavailable({ ...withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432 (Queue: kiln-poll, Worker: 1f2e)'), queue: 'kiln-poll' }), true);
    assert.equal(isDatabaseUnavailable(new Error('timeout exceeded when trying to connect')), true);
  });

  it('is false for anything that is not an error object, and does not loop on a cycle', () => {
    for (const value of [undefined, null, 'ECONNREFUSED', 42, {}]) assert.equal(isDatabaseUnavailable(value), false);
    const cyclic = new Error('a') as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    assert.equal(isDatabaseUnavailable(cyclic), false);
  });
});
