// A request may name whom within its tenant it is for (an end user, a store): the subject.
// It is stored as sent, shown wherever the generation is, filters lists, takes part in
// idempotency, and never reaches another tenant.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerationEvent } from '../client-sdk/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { fieldsOf, rejects } from './support/rejections.ts';

describe('subjects', () => {
  let kiln: TestKiln;
  before(async () => {
    // API only: the generations stay queued, so what is read back is what was written.
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('stores the subject as sent and returns it in status and list; null when none was named', async () => {
    const { client } = await kiln.newTenant();
    // Opaque: kept exactly, spaces and all; 200 characters even when they take more bytes.
    const subjects = ['user:42', ' store 7 ', '🦊'.repeat(200)];
    const ids = [];
    for (const subject of subjects) ids.push((await client.generate({ prompt: `for ${subject.slice(0, 10)}`, subject })).id);
    const anonymous = await client.generate({ prompt: 'for nobody in particular' });

    for (const [index, id] of ids.entries()) assert.equal((await client.status({ id })).subject, subjects[index]);
    assert.equal((await client.status({ id: anonymous.id })).subject, null);
    const listed = await client.list();
    assert.deepEqual(listed.items.map((item) => item.subject), [null, ...[...subjects].reverse()], 'newest first');
  });

  it('lists one subject\'s generations, newest first, page by page, and no one else\'s', async () => {
    const { client } = await kiln.newTenant();
    const alice: string[] = [];
    for (let index = 0; index < 5; index += 1) {
      alice.push((await client.generate({ prompt: `alice ${index}`, subject: 'alice' })).id);
      await client.generate({ prompt: `bob ${index}`, subject: 'bob' });
      await client.generate({ prompt: `anyone ${index}` });
    }
    const first = await client.list({ subject: 'alice', limit: 2 });
    assert.deepEqual(first.items.map((item) => item.id), [alice[4], alice[3]]);
    assert.ok(first.nextCursor);
    const second = await client.list({ subject: 'alice', limit: 2, cursor: first.nextCursor });
    assert.deepEqual(second.items.map((item) => item.id), [alice[2], alice[1]]);
    const last = await client.list({ subject: 'alice', limit: 2, cursor: second.nextCursor ?? undefined });
    assert.deepEqual(last.items.map((item) => item.id), [alice[0]]);
    assert.equal(last.nextCursor, null);

    assert.equal((await client.list({ subject: 'bob', limit: 100 })).items.length, 5);
    assert.equal((await client.list({ subject: 'Alice' })).items.length, 0, 'subjects are compared exactly');
    assert.equal((await client.list({ subject: 'alice', states: ['canceled'] })).items.length, 0, 'with the other filters');
    assert.equal((await client.list({ limit: 100 })).items.length, 15, 'without the filter: everyone\'s');
  });

  it('gives a batch\'s items the batch\'s subject unless an item names its own', async () => {
    const { client } = await kiln.newTenant();
    const { batchId, ids } = await client.batch({
      subject: 'store-1',
      items: [{ prompt: 'default' }, { prompt: 'own', subject: 'store-2' }, { prompt: 'default too' }],
    });
    const subjects = await Promise.all(ids.map(async (id) => (await client.status({ id })).subject));
    assert.deepEqual(subjects, ['store-1', 'store-2', 'store-1']);
    assert.deepEqual(
      (await client.list({ batchId, subject: 'store-1' })).items.map((item) => item.id),
      [ids[2], ids[0]],
    );

    const plain = await client.batch({ items: [{ prompt: 'no subject' }, { prompt: 'one of its own', subject: 'store-3' }] });
    assert.deepEqual(await Promise.all(plain.ids.map(async (id) => (await client.status({ id })).subject)), [null, 'store-3']);
  });

  it('rejects a bad subject with the field named, writing nothing', async () => {
    const before = await kiln.countGenerations();
    const cases: [unknown, RegExp][] = [
      ['', /subject must not be empty/],
      ['u'.repeat(201), /subject must be at most 200 characters/],
      ['line\nbreak', /control characters/],
      ['tab\there', /control characters/],
      ['nul\u0000', /control characters/],
      ['\ud800alone', /well-formed/],
      [42, /subject must be a string/],
    ];
    for (const [subject, message] of cases) {
      const fields = fieldsOf(await rejects(kiln.client.generate({ prompt: 'ok', subject: subject as string }), 'BAD_REQUEST', message));
      assert.deepEqual(Object.keys(fields), ['subject'], `for ${JSON.stringify(subject)}`);
    }

    const items = [{ prompt: 'a' }, { prompt: 'b' }, { prompt: 'c' }, { prompt: 'd', subject: 'bad\r' }];
    const item = fieldsOf(await rejects(kiln.client.batch({ items }), 'BAD_REQUEST', /items\.3\.subject: subject must not contain control characters/));
    assert.deepEqual(Object.keys(item), ['items.3.subject']);
    const batchDefault = fieldsOf(await rejects(kiln.client.batch({ subject: '', items: [{ prompt: 'a' }] }), 'BAD_REQUEST', /subject must not be empty/));
    assert.deepEqual(Object.keys(batchDefault), ['subject']);
    const filter = fieldsOf(await rejects(kiln.client.list({ subject: 'x'.repeat(201) }), 'BAD_REQUEST', /at most 200 characters/));
    assert.deepEqual(Object.keys(filter), ['subject']);

    assert.equal(await kiln.countGenerations(), before);
  });

  it('answers a repeated idempotency key with the first generation only for the same subject', async () => {
    const first = await kiln.client.generate({ prompt: 'keyed', subject: 'user-1', idempotencyKey: 'subject-key' });
    const again = await kiln.client.generate({ prompt: 'keyed', subject: 'user-1', idempotencyKey: 'subject-key' });
    assert.deepEqual([again.id, again.deduplicated], [first.id, true]);
    await rejects(kiln.client.generate({ prompt: 'keyed', subject: 'user-2', idempotencyKey: 'subject-key' }), 'CONFLICT', /different request/);
    await rejects(kiln.client.generate({ prompt: 'keyed', idempotencyKey: 'subject-key' }), 'CONFLICT', /different request/);

    await kiln.client.generate({ prompt: 'keyed without', idempotencyKey: 'no-subject-key' });
    await rejects(kiln.client.generate({ prompt: 'keyed without', subject: 'user-1', idempotencyKey: 'no-subject-key' }), 'CONFLICT');
    assert.equal((await kiln.client.status({ id: first.id })).subject, 'user-1', 'the first is unchanged');
  });

  it('keeps each tenant\'s subjects to itself', async () => {
    const owner = await kiln.newTenant();
    const stranger = await kiln.newTenant();
    const { id } = await owner.client.generate({ prompt: 'private', subject: 'shared-name' });
    assert.equal((await stranger.client.list({ subject: 'shared-name' })).items.length, 0);
    await stranger.client.generate({ prompt: 'the stranger\'s own', subject: 'shared-name' });
    const own = await stranger.client.list({ subject: 'shared-name' });
    assert.equal(own.items.length, 1);
    assert.notEqual(own.items[0]?.id, id);
    assert.deepEqual((await owner.client.list({ subject: 'shared-name' })).items.map((item) => item.id), [id]);
  });

  it('shows the subject on every realtime event of the generation, from its first to its last', async () => {
    const { id } = await kiln.client.generate({ prompt: 'watched', subject: 'watcher-9' });
    const plain = await kiln.client.generate({ prompt: 'watched, no subject' });
    await kiln.client.cancel({ id });
    await kiln.client.cancel({ id: plain.id });
    const eventsOf = async (generationId: string) => {
      const events: GenerationEvent[] = [];
      for await (const event of kiln.client.watch({ generationId }, { signal: AbortSignal.timeout(30_000) })) events.push(event);
      return events;
    };
    const events = await eventsOf(id);
    assert.deepEqual(events.map((event) => event.stage), ['queued', 'canceled']);
    assert.ok(events.every((event) => event.subject === 'watcher-9'), JSON.stringify(events));
    assert.ok((await eventsOf(plain.id)).every((event) => event.subject === null));
  });
});
