// Every bad input gets the right tRPC code and a message a person can act on, writes
// nothing, and leaves the server serving.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKilnClient } from '../client-sdk/index.ts';
import { revokeApiKey } from '../db/api-keys.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { fieldsOf, rejects } from './support/rejections.ts';

interface ErrorBody {
  error: { message: string; code: number; data: { code: string; httpStatus: number; fields?: Record<string, string[]>; stack?: string } };
}

describe('bad input', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('rejects an empty or over-long prompt with the field named', async () => {
    const before = await kiln.countGenerations();
    const empty = await rejects(kiln.client.generate({ prompt: '   ' }), 'BAD_REQUEST', /prompt must not be empty/);
    assert.deepEqual(Object.keys(fieldsOf(empty)), ['prompt']);
    await rejects(kiln.client.generate({ prompt: 'x'.repeat(2001) }), 'BAD_REQUEST', /at most 2000 characters/);
    assert.equal(await kiln.countGenerations(), before);
  });

  it('rejects unknown platforms and formats, listing the valid ones', async () => {
    const platform = await rejects(
      kiln.client.generate({ prompt: 'ok', platforms: ['myspace' as never] }),
      'BAD_REQUEST',
      /platform must be one of: instagram-post/,
    );
    assert.ok(fieldsOf(platform)['platforms.0']);
    const format = await rejects(kiln.client.generate({ prompt: 'ok', formats: ['gif' as never] }), 'BAD_REQUEST', /format must be one of: webp, avif, png, jpeg/);
    assert.ok(fieldsOf(format)['formats.0']);
    await rejects(kiln.client.generate({ prompt: 'ok', formats: ['png', 'png'] }), 'BAD_REQUEST', /must not repeat/);
  });

  it('rejects sizes out of range', async () => {
    const error = await rejects(kiln.client.generate({ prompt: 'ok', sizes: [{ width: 10_000, height: 100 }] }), 'BAD_REQUEST', /between 16 and 4096/);
    assert.ok(fieldsOf(error)['sizes.0.width']);
    await rejects(kiln.client.generate({ prompt: 'ok', sizes: [{ width: 8, height: 100 }] }), 'BAD_REQUEST');
    await rejects(kiln.client.generate({ prompt: 'ok', seed: -1 }), 'BAD_REQUEST');
  });

  it('rejects deadlines too short or too long, with the field named', async () => {
    const before = await kiln.countGenerations();
    const short = await rejects(kiln.client.generate({ prompt: 'ok', deadlineSeconds: 5 }), 'BAD_REQUEST', /deadlineSeconds must be at least 10/);
    assert.ok(fieldsOf(short).deadlineSeconds);
    await rejects(kiln.client.generate({ prompt: 'ok', deadlineSeconds: 90_000 }), 'BAD_REQUEST', /at most 86400/);
    await rejects(kiln.client.batch({ items: [{ prompt: 'ok', deadlineSeconds: 1.5 }] }), 'BAD_REQUEST');
    assert.equal(await kiln.countGenerations(), before);
  });

  it('rejects wrong types and unknown fields', async () => {
    await rejects(kiln.client.generate({ prompt: 42 as never }), 'BAD_REQUEST', /prompt must be a string/);
    const unknown = await rejects(kiln.client.generate({ prompt: 'ok', colour: 'red' } as never), 'BAD_REQUEST');
    assert.match(unknown.message, /colour/);
  });

  it('rejects an empty batch and one over 1,000 items, writing nothing', async () => {
    const before = await kiln.countGenerations();
    await rejects(kiln.client.batch({ items: [] }), 'BAD_REQUEST', /at least one item/);
    const items = Array.from({ length: 1001 }, (_, index) => ({ prompt: `p${index}` }));
    await rejects(kiln.client.batch({ items }), 'BAD_REQUEST', /at most 1000 items/);
    // One bad item rejects the whole batch, and names the item.
    const mixed = await rejects(kiln.client.batch({ items: [{ prompt: 'fine' }, { prompt: '' }] }), 'BAD_REQUEST');
    assert.ok(fieldsOf(mixed)['items.1.prompt']);
    assert.equal(await kiln.countGenerations(), before);
  });

  it('answers malformed JSON and oversized bodies over plain HTTP with clear errors', async () => {
    const post = (body: string) =>
      fetch(`${kiln.url}/trpc/generate`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${kiln.apiKey}` }, body });
    const malformed = await post('{"prompt": "unterminated');
    assert.equal(malformed.status, 400);
    const malformedBody = (await malformed.json()) as ErrorBody;
    assert.equal(malformedBody.error.data.code, 'BAD_REQUEST');
    assert.match(malformedBody.error.message, /not valid JSON/);
    assert.equal(malformedBody.error.data.stack, undefined);

    const huge = await post(JSON.stringify({ prompt: 'x'.repeat(5 * 1024 * 1024) }));
    assert.equal(huge.status, 413);
    assert.equal(((await huge.json()) as ErrorBody).error.data.code, 'PAYLOAD_TOO_LARGE');
  });

  it('rejects a missing, unknown or revoked API key', async () => {
    const anonymous = createKilnClient({ url: kiln.url, apiKey: '' });
    await rejects(anonymous.generate({ prompt: 'ok' }), 'UNAUTHORIZED', /missing API key/);
    const wrong = createKilnClient({ url: kiln.url, apiKey: 'kiln_sk_not-a-real-key' });
    await rejects(wrong.generate({ prompt: 'ok' }), 'UNAUTHORIZED', /not recognised or revoked/);

    const other = await kiln.newTenant();
    const keyId = (await kiln.app.database.db.selectFrom('api_keys').select('id').where('tenant_id', '=', other.tenantId).executeTakeFirstOrThrow()).id;
    assert.equal((await revokeApiKey(kiln.app.database.db, keyId)).kind, 'revoked');
    await rejects(other.client.generate({ prompt: 'ok' }), 'UNAUTHORIZED', /revoked/);
  });

  it('answers NOT_FOUND for another tenant\'s generation and batch, revealing nothing', async () => {
    const { id } = await kiln.client.generate({ prompt: 'mine' });
    const { batchId } = await kiln.client.batch({ items: [{ prompt: 'mine too' }] });
    const stranger = await kiln.newTenant();
    const status = await rejects(stranger.client.status({ id }), 'NOT_FOUND');
    assert.doesNotMatch(status.message, /mine/);
    await rejects(stranger.client.cancel({ id }), 'NOT_FOUND');
    await rejects(stranger.client.batchStatus({ batchId }), 'NOT_FOUND');
    const listed = await stranger.client.list();
    assert.equal(listed.items.length, 0);
    await rejects(stranger.client.list({ cursor: id }), 'BAD_REQUEST', /cursor is not valid/);
    assert.equal((await kiln.client.status({ id })).state, 'queued', 'the owner still sees it, unchanged');
  });

  it('rejects malformed ids and cursors', async () => {
    await rejects(kiln.client.status({ id: 'not-a-uuid' }), 'BAD_REQUEST', /must be a generation UUID/);
    await rejects(kiln.client.list({ cursor: 'garbage' }), 'BAD_REQUEST', /cursor is not valid/);
    await rejects(kiln.client.list({ limit: 1000 }), 'BAD_REQUEST', /limit must be between 1 and 100/);
  });

  it('refuses to cancel a finished generation with CONFLICT, and a second cancel changes nothing', async () => {
    const { id } = await kiln.client.generate({ prompt: 'to be canceled' });
    await kiln.client.cancel({ id });
    const before = await kiln.client.status({ id });
    await rejects(kiln.client.cancel({ id }), 'CONFLICT', /already canceled; only queued or running generations can be canceled/);
    const after = await kiln.client.status({ id });
    assert.deepEqual(after.events, before.events);
  });

  it('rejects an idempotency key reused for a different request', async () => {
    await kiln.client.generate({ prompt: 'first', idempotencyKey: 'key-1' });
    await rejects(kiln.client.generate({ prompt: 'second', idempotencyKey: 'key-1' }), 'CONFLICT', /different request/);
  });

  it('keeps serving after all of that', async () => {
    const health = await fetch(`${kiln.url}/health`);
    assert.equal(health.status, 200);
    const { id } = await kiln.client.generate({ prompt: 'still fine' });
    assert.equal((await kiln.client.status({ id })).state, 'queued');
  });
});

describe('unexpected errors', () => {
  it('reach clients as a masked INTERNAL_SERVER_ERROR in production, never with database details', async () => {
    const kiln = await startKiln({ env: { KILN_ROLE: 'api', NODE_ENV: 'production' } });
    try {
      const { sql } = await import('kysely');
      await sql`ALTER TABLE generations RENAME TO generations_elsewhere`.execute(kiln.app.database.db);
      const error = await rejects(kiln.client.generate({ prompt: 'meets a broken database' }), 'INTERNAL_SERVER_ERROR');
      assert.doesNotMatch(error.message, /generations|relation|does not exist/);
      assert.match(error.message, /Internal server error/);
      await sql`ALTER TABLE generations_elsewhere RENAME TO generations`.execute(kiln.app.database.db);
      const { id } = await kiln.client.generate({ prompt: 'works again' });
      assert.ok(id);
    } finally {
      await kiln.stop();
    }
  });
});

describe('limits that protect the server', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('refuses more than 20 calls in one HTTP batch', async () => {
    const calls = 21;
    const paths = Array.from({ length: calls }, () => 'generate').join(',');
    const body = Object.fromEntries(Array.from({ length: calls }, (_, index) => [String(index), { prompt: `batched ${index}` }]));
    const response = await fetch(`${kiln.url}/trpc/${paths}?batch=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${kiln.apiKey}` },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 400);
    assert.equal((await kiln.client.list({ limit: 1 })).items.length, 0, 'nothing was written');
  });

  it('rejects NUL characters, repeated sizes and requests over the pixel budget', async () => {
    const nul = await rejects(kiln.client.generate({ prompt: 'bad \u0000 byte' }), 'BAD_REQUEST', /NUL/);
    assert.ok(fieldsOf(nul).prompt);
    await rejects(kiln.client.batch({ items: [{ prompt: 'fine' }, { prompt: 'x\u0000' }] }), 'BAD_REQUEST', /NUL/);
    await rejects(
      kiln.client.generate({ prompt: 'twice', sizes: [{ width: 100, height: 100 }, { width: 100, height: 100 }] }),
      'BAD_REQUEST',
      /sizes must not repeat/,
    );
    const huge = Array.from({ length: 8 }, (_, index) => ({ width: 4096, height: 4000 + index }));
    await rejects(kiln.client.generate({ prompt: 'too many pixels', sizes: huge, formats: ['png'] }), 'BAD_REQUEST', /megapixels/);
    assert.equal((await kiln.client.list({ limit: 1 })).items.length, 0);
  });

  it('treats a repeated idempotency key with different options as a conflict, and a concurrent repeat as one generation', async () => {
    await kiln.client.generate({ prompt: 'same', platforms: ['x-post'], idempotencyKey: 'k-options' });
    await rejects(kiln.client.generate({ prompt: 'same', platforms: ['banner'], idempotencyKey: 'k-options' }), 'CONFLICT', /different request/);
    const racing = await Promise.all(Array.from({ length: 5 }, () => kiln.client.generate({ prompt: 'race', idempotencyKey: 'k-race' })));
    assert.equal(new Set(racing.map((result) => result.id)).size, 1);
    assert.equal(racing.filter((result) => !result.deduplicated).length, 1);
  });
});
