// Statements marked PREPARED are prepared once per connection (their plan cached); others are not.
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { describe, it } from 'node:test';
import { createTestDatabase } from '../test/support/kiln.ts';
import { PREPARED, openDatabase } from './database.ts';

describe('prepared statements', () => {
  it('prepares a marked statement once per connection and answers as an unmarked one would', async () => {
    const database = openDatabase({ connectionString: await createTestDatabase(), maxConnections: 1 });
    try {
      const preparedNames = async () =>
        (await sql<{ name: string }>`SELECT name FROM pg_prepared_statements ORDER BY name`.execute(database.db)).rows.map((row) => row.name);
      assert.deepEqual(await preparedNames(), [], 'nothing unmarked is prepared');
      const twice = (n: number) => sql<{ twice: number }>`${PREPARED}SELECT ${n}::int * 2 AS twice`.execute(database.db);
      assert.deepEqual((await twice(2)).rows, [{ twice: 4 }]);
      assert.deepEqual((await twice(21)).rows, [{ twice: 42 }], 'new values, the same statement');
      const names = await preparedNames();
      assert.equal(names.length, 1, `one statement prepared: ${names.join(', ')}`);
      assert.match(names[0]!, /^kiln_[0-9a-f]{24}$/);
      assert.deepEqual((await sql<{ twice: number }>`SELECT ${3}::int * 2 AS twice`.execute(database.db)).rows, [{ twice: 6 }]);
      assert.equal((await preparedNames()).length, 1, 'the unmarked one was not prepared');
    } finally {
      await database.close();
    }
  });
});
