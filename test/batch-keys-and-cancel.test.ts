// Batches as accounts expect them: an idempotency key like generate's (remembered for a day),
// cancel of a whole batch, and a batch's partial failure reported item by item.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { grantCredits } from '../db/credits.ts';
import { rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const items = (...prompts: string[]) => prompts.map((prompt) => ({ prompt, platforms: ['thumbnail' as const] }));

describe('batches: idempotency, cancel, failures', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  /** As if it had been made `hours` ago. */
  const age = (table: 'batches' | 'generations', id: string, hours: number) =>
    sql`UPDATE ${sql.table(table)} SET created_at = created_at - make_interval(hours => ${hours}) WHERE id = ${id}`.execute(kiln.app.database.db);

  it('answers a repeated key with the first batch, and refuses it for a different batch', async () => {
    const { client } = await kiln.newTenant();
    const first = await client.batch({ items: items('a', 'b'), idempotencyKey: 'nightly-1' });
    assert.equal(first.deduplicated, false);
    const before = await kiln.countGenerations();
    const again = await client.batch({ items: items('a', 'b'), idempotencyKey: 'nightly-1' });
    assert.deepEqual(again, { ...first, deduplicated: true });
    assert.equal(await kiln.countGenerations(), before, 'nothing new was queued');
    await rejects(client.batch({ items: items('a', 'c'), idempotencyKey: 'nightly-1' }), 'CONFLICT', /idempotencyKey "nightly-1" was already used for a different batch/);
    // Keys are the tenant's own: another tenant's same key is another batch.
    const other = await (await kiln.newTenant()).client.batch({ items: items('a', 'b'), idempotencyKey: 'nightly-1' });
    assert.notEqual(other.batchId, first.batchId);
  });

  it('takes a repeated generate key with another cache choice for a different request', async () => {
    const { client } = await kiln.newTenant();
    await client.generate({ prompt: 'seeded', seed: 7, idempotencyKey: 'choice' });
    assert.equal((await client.generate({ prompt: 'seeded', seed: 7, idempotencyKey: 'choice' })).deduplicated, true);
    await rejects(client.generate({ prompt: 'seeded', seed: 7, cache: 'off', idempotencyKey: 'choice' }), 'CONFLICT', /already used for a different request/);
  });

  it('queues one batch for concurrent calls with the same key', async () => {
    const { client } = await kiln.newTenant();
    const answers = await Promise.all(Array.from({ length: 5 }, () => client.batch({ items: items('x', 'y', 'z'), idempotencyKey: 'once' })));
    assert.equal(new Set(answers.map((answer) => answer.batchId)).size, 1);
    assert.equal(answers.filter((answer) => !answer.deduplicated).length, 1);
    assert.deepEqual(answers.map((answer) => answer.ids.length), [3, 3, 3, 3, 3]);
  });

  it('forgets a key after a day, for batch and generate alike', async () => {
    const { client } = await kiln.newTenant();
    const first = await client.batch({ items: items('old'), idempotencyKey: 'daily' });
    await age('batches', first.batchId, 25);
    const next = await client.batch({ items: items('new'), idempotencyKey: 'daily' });
    assert.equal(next.deduplicated, false);
    assert.notEqual(next.batchId, first.batchId);

    const single = await client.generate({ prompt: 'old', idempotencyKey: 'daily-one' });
    await age('generations', single.id, 25);
    const reused = await client.generate({ prompt: 'a new request', idempotencyKey: 'daily-one' });
    assert.equal(reused.deduplicated, false);
    assert.notEqual(reused.id, single.id);
  });

  it('cancels what is left of a batch, refunds it, and says what it canceled', async () => {
    const { tenantId, client } = await kiln.newTenant();
    await grantCredits(kiln.app.database.db, tenantId, 1_000_000, 'test');
    const { batchId, ids } = await client.batch({ items: items('slow one [sim:slow=30000]', 'slow two [sim:slow=30000]', 'slow three [sim:slow=30000]') });
    const answer = await client.cancelBatch({ batchId });
    assert.deepEqual(answer, { batchId, canceled: ids });
    const done = await Promise.all(ids.map((id) => client.waitFor(id, { timeoutMs: 30_000 })));
    assert.deepEqual(done.map((generation) => generation.state), ['canceled', 'canceled', 'canceled']);
    assert.deepEqual(await client.cancelBatch({ batchId }), { batchId, canceled: [] }, 'nothing left to cancel');
    assert.equal((await client.credits()).availableUsd, 1, 'every reservation refunded');
    await rejects((await kiln.newTenant()).client.cancelBatch({ batchId }), 'NOT_FOUND');
  });

  it('reports a partial failure item by item', async () => {
    const { client } = await kiln.newTenant();
    const { batchId, ids } = await client.batch({ items: items('fine', 'broken [sim:fail]', 'fine too', 'refused [sim:nsfw]') });
    await Promise.all(ids.map((id) => client.waitFor(id, { timeoutMs: 60_000 })));
    const status = await client.batchStatus({ batchId });
    assert.equal(status.done, true);
    assert.deepEqual(status.counts.succeeded, 2);
    assert.deepEqual(
      status.failures.map(({ index, id, error }) => ({ index, id, code: error.code })),
      [
        { index: 1, id: ids[1], code: 'provider_failed' },
        { index: 3, id: ids[3], code: 'provider_failed' },
      ],
    );
    assert.ok(status.failures.every((failure) => failure.error.message.length > 0));
  });
});
