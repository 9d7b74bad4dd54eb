// Scoped tokens: a browser reads and follows one generation or batch, and nothing else.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TRPCClientError, createKilnClient, type KilnClient } from '../client-sdk/index.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { rejects } from './support/rejections.ts';

const code = (expected: string) => (error: unknown) => error instanceof TRPCClientError && error.data?.code === expected;

describe('scoped tokens', () => {
  let kiln: TestKiln;
  const browsers: KilnClient[] = [];
  const browser = (token: string) => {
    const client = createKilnClient({ url: kiln.url, token });
    browsers.push(client);
    return client;
  };
  before(async () => {
    kiln = await startKiln();
  });
  after(async () => {
    for (const client of browsers) client.close();
    await kiln.stop();
  });

  it('lets a browser follow and read one generation, and do nothing else', async () => {
    const { id } = await kiln.client.generate({ prompt: 'for the browser', platforms: ['thumbnail'] });
    const { token, expiresAt } = await kiln.client.createToken({ generationId: id });
    assert.match(token, /^kiln_st_/);
    assert.ok(new Date(expiresAt).getTime() > Date.now() + 10 * 60_000, 'lives 15 minutes by default');

    const frontend = browser(token);
    const done = await frontend.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded');
    assert.ok(done.assets.length > 0);

    const { id: other } = await kiln.client.generate({ prompt: 'not for the browser' });
    // Another of the tenant's generations looks exactly like one that does not exist.
    const notYours = await rejects(frontend.status({ id: other }), 'NOT_FOUND');
    const missing = randomUUID();
    const absent = await rejects(frontend.status({ id: missing }), 'NOT_FOUND');
    assert.equal(notYours.message.replace(other, '<id>'), absent.message.replace(missing, '<id>'));
    await rejects(frontend.watch({ generationId: other }).next(), 'NOT_FOUND');
    await assert.rejects(frontend.generate({ prompt: 'spend my credits' }), code('FORBIDDEN'));
    await assert.rejects(frontend.cancel({ id }), code('FORBIDDEN'));
    await assert.rejects(frontend.list(), code('FORBIDDEN'));
    await assert.rejects(frontend.createToken({ generationId: other }), code('FORBIDDEN'));
    await assert.rejects(async () => {
      for await (const _event of frontend.watch({}, { signal: AbortSignal.timeout(5_000) })) break;
    }, code('FORBIDDEN'));
  });

  it('lets a browser follow a batch and read its items', async () => {
    const { batchId, ids } = await kiln.client.batch({ items: [{ prompt: 'one', platforms: ['thumbnail'] }, { prompt: 'two', platforms: ['thumbnail'] }] });
    const frontend = browser((await kiln.client.createToken({ batchId })).token);
    for await (const event of frontend.watch({ batchId }, { signal: AbortSignal.timeout(60_000) })) {
      if (event.batch?.done) break;
    }
    assert.equal((await frontend.batchStatus({ batchId })).counts.succeeded, 2);
    assert.equal((await frontend.status({ id: ids[1]! })).state, 'succeeded');

    // The tenant's other batch, and a generation outside this batch: as if they did not exist.
    const elsewhere = await kiln.client.batch({ items: [{ prompt: 'three' }] });
    await rejects(frontend.batchStatus({ batchId: elsewhere.batchId }), 'NOT_FOUND', /^batch .* was not found/);
    await rejects(frontend.status({ id: elsewhere.ids[0]! }), 'NOT_FOUND', /^generation .* was not found/);
    await rejects(frontend.watch({ batchId: elsewhere.batchId }).next(), 'NOT_FOUND');
  });

  it('refuses tokens that are forged, expired, or for another tenant\'s work', async () => {
    const { id } = await kiln.client.generate({ prompt: 'guarded' });
    const { token } = await kiln.client.createToken({ generationId: id, ttlSeconds: 10 });
    const [payload, signature] = token.slice('kiln_st_'.length).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const stretched = Buffer.from(JSON.stringify({ ...claims, e: Number(claims.e) + 86_400 })).toString('base64url');
    await assert.rejects(browser(`kiln_st_${stretched}.${signature}`).status({ id }), code('UNAUTHORIZED'));
    await assert.rejects(browser('kiln_st_garbage').status({ id }), code('UNAUTHORIZED'));

    const stranger = await kiln.newTenant();
    await assert.rejects(stranger.client.createToken({ generationId: id }), code('NOT_FOUND'));
    await assert.rejects(kiln.client.createToken({ generationId: id, batchId: id }), code('BAD_REQUEST'));

    const expired = (await kiln.client.createToken({ generationId: id, ttlSeconds: 10 })).token;
    const later = Date.now() + 11_000;
    // Wait out a 10-second token (the shortest allowed) rather than fake the clock.
    await new Promise((resolve) => setTimeout(resolve, later - Date.now()));
    await assert.rejects(browser(expired).status({ id }), (error) => code('UNAUTHORIZED')(error) && /expired/.test((error as Error).message));
  });
});
