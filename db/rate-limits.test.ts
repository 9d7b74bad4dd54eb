// The shared budget in PostgreSQL follows gcra.ts: the same spacing, bursts and pauses when
// reservations go through the one SQL statement every worker process uses.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase } from '../test/support/kiln.ts';
import { openDatabase, type DatabaseHandle } from './database.ts';
import { migrateToLatest } from './migrate.ts';
import { budgetStates, ensureBudgets, pauseBudget, reserveCall, type Budget } from './rate-limits.ts';

// One call a minute, three at once: wide enough that the milliseconds a query takes do not matter.
const budget = (name: string): Budget => ({ name, perMinute: 1, burst: 3 });
/** Within this of the arithmetic (the statements take a moment). */
const SLACK_MS = 5_000;

describe('provider budgets in PostgreSQL', () => {
  let database: DatabaseHandle;
  before(async () => {
    database = openDatabase({ connectionString: await createTestDatabase(), maxConnections: 4 });
    await migrateToLatest(database.db);
  });
  after(() => database.close());

  it('grant a burst at once, then slots one interval apart, and refuse what lies beyond the wait', async () => {
    const creates = budget('test:burst');
    await ensureBudgets(database.db, [creates.name]);
    const outcomes = [];
    for (let index = 0; index < 5; index += 1) outcomes.push(await reserveCall(database.db, creates, 100_000));
    const waits = outcomes.slice(0, 4).map((outcome) => (outcome.granted ? outcome.waitMs : Number.NaN));
    [0, 0, 0, 60_000].forEach((expected, index) => assert.ok(Math.abs(waits[index]! - expected) < SLACK_MS, `call ${index} waits ${waits[index]} ms`));
    const refused = outcomes[4]!;
    assert.equal(refused.granted, false);
    assert.ok(!refused.granted && Math.abs(refused.retryInMs - 20_000) < SLACK_MS, `retry in ${JSON.stringify(refused)}`);
    const [state] = await budgetStates(database.db, [creates]);
    assert.equal(state?.granted, 4, 'the refused call took no slot');
  });

  it('pause everyone after a 429 and resume at the steady rate, with no burst saved up', async () => {
    const reads = budget('test:pause');
    await ensureBudgets(database.db, [reads.name]);
    await pauseBudget(database.db, reads, 30_000);
    const first = await reserveCall(database.db, reads, 1_000_000);
    const second = await reserveCall(database.db, reads, 1_000_000);
    assert.ok(first.granted && Math.abs(first.waitMs - 30_000) < SLACK_MS, JSON.stringify(first));
    assert.ok(second.granted && Math.abs(second.waitMs - 90_000) < SLACK_MS, JSON.stringify(second));
    const [state] = await budgetStates(database.db, [reads]);
    assert.equal(state?.throttled, 1);
  });

  it('hand out each slot once when many processes reserve at the same moment', async () => {
    const shared = { name: 'test:race', perMinute: 60, burst: 1 };
    await ensureBudgets(database.db, [shared.name]);
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => reserveCall(database.db, shared, 100_000)));
    const waits = outcomes.map((outcome) => (outcome.granted ? outcome.waitMs : Number.NaN)).sort((a, b) => a - b);
    for (let index = 1; index < waits.length; index += 1) {
      assert.ok(waits[index]! - waits[index - 1]! > 1000 - SLACK_MS / 10, `slots ${waits.join(', ')} ms are not a second apart`);
    }
  });
});
