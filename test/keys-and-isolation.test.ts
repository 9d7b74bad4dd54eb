// Keys, tokens and isolation: the operator manages keys (admin procedures, or the CLI); a
// revoked key stops working everywhere within the auth cache time — its calls, its open
// subscriptions, the tokens it minted; a token's expiry holds on every call and every new
// subscription; and no tenant reaches another's work through any procedure, route or socket.
import { trace } from '@opentelemetry/api';
import { silentLogger } from '../jobs/logger.ts';
import { createCallObserver } from '../server/call-telemetry.ts';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createKilnClient, type KilnClient } from '../client-sdk/index.ts';
import { revokeApiKey } from '../db/api-keys.ts';
import { createAppRouter } from '../server/router.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';
import { isError, isStarted, openRawSocket } from './support/raw-socket.ts';
import { rejects } from './support/rejections.ts';

/** A browser holding `token` asks for `id` over HTTP, and is refused for the reason given. */
async function refusedOverHttp(url: string, token: string, id: string, reason: RegExp) {
  const browser = createKilnClient({ url, token });
  try {
    await rejects(browser.status({ id }), 'UNAUTHORIZED', reason);
  } finally {
    browser.close();
  }
}

const ADMIN_TOKEN = 'admin-token-for-the-operator-0123456789';
const AUTH_CACHE_MS = 500;

describe('admin procedures', () => {
  let kiln: TestKiln;
  let admin: KilnClient;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api', KILN_ADMIN_TOKEN: ADMIN_TOKEN } });
    admin = createKilnClient({ url: kiln.url, apiKey: ADMIN_TOKEN });
  });
  after(async () => {
    admin.close();
    await kiln.stop();
  });

  it('let the operator create, list and revoke keys; a revoked key is refused at once', async () => {
    const created = await admin.trpc.admin.keys.create.mutate({ tenant: 'acme-admin', tier: 'pro' });
    assert.match(created.key, /^kiln_sk_/);
    assert.equal(created.tenantCreated, true);
    assert.equal(created.tenant.tier, 'pro');
    const second = await admin.trpc.admin.keys.create.mutate({ tenant: 'acme-admin', tier: 'free', name: 'rotation' });
    assert.equal(second.tenantCreated, false);
    assert.deepEqual(second.ignored, ['tier'], 'an existing tenant keeps its tier');

    const listed = await admin.trpc.admin.keys.list.query({ tenant: 'acme-admin' });
    assert.deepEqual(listed.map((key) => key.id).sort(), [created.keyId, second.keyId].sort());
    assert.ok(listed.every((key) => !('key' in key) && key.prefix.length < 20), 'only prefixes are listed');
    await rejects(admin.trpc.admin.keys.list.query({ tenant: 'nobody-by-this-name' }), 'NOT_FOUND');

    const client = createKilnClient({ url: kiln.url, apiKey: created.key });
    try {
      await client.list();
      await admin.trpc.admin.keys.revoke.mutate({ key: created.keyId });
      // Revoked through this process: forgotten here at once, no cache time to wait out.
      await rejects(client.list(), 'UNAUTHORIZED', /revoked/);
      await rejects(admin.trpc.admin.keys.revoke.mutate({ key: created.keyId }), 'NOT_FOUND');
      const after = await admin.trpc.admin.keys.list.query({ tenant: created.tenant.id });
      assert.ok(after.find((key) => key.id === created.keyId)?.revokedAt);
    } finally {
      client.close();
    }
  });

  it('refuse tenants: their keys and tokens manage no keys, their own or another\'s', async () => {
    const other = await kiln.newTenant();
    const otherKeyId = (await admin.trpc.admin.keys.list.query({ tenant: other.tenantId }))[0]!.id;
    await rejects(kiln.client.trpc.admin.keys.revoke.mutate({ key: otherKeyId }), 'FORBIDDEN', /admin token/);
    await rejects(kiln.client.trpc.admin.keys.list.query({}), 'FORBIDDEN');
    await rejects(kiln.client.trpc.admin.keys.create.mutate({ tenant: 'mine' }), 'FORBIDDEN');
    const { id } = await kiln.client.generate({ prompt: 'a token tries' });
    const token = createKilnClient({ url: kiln.url, token: (await kiln.client.createToken({ generationId: id })).token });
    try {
      await rejects(token.trpc.admin.keys.list.query({}), 'FORBIDDEN');
    } finally {
      token.close();
    }
    await other.client.list(); // the other tenant's key still works
    const anonymous = createKilnClient({ url: kiln.url, apiKey: '' });
    await rejects(anonymous.trpc.admin.keys.list.query({}), 'UNAUTHORIZED', /missing admin token/);
    await rejects(createKilnClient({ url: kiln.url, apiKey: 'kiln_sk_guess' }).trpc.admin.keys.list.query({}), 'UNAUTHORIZED');
    // And the admin token is no tenant's key.
    await rejects(admin.generate({ prompt: 'operator' }), 'FORBIDDEN', /admin procedures only/);
  });

  it('are off without an admin token', async () => {
    const plain = await startKiln({ env: { KILN_ROLE: 'api' } });
    try {
      await rejects(plain.client.trpc.admin.keys.list.query({}), 'FORBIDDEN', /KILN_ADMIN_TOKEN is not set/);
    } finally {
      await plain.stop();
    }
  });
});

describe('revoking a key', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api', KILN_AUTH_CACHE_MS: String(AUTH_CACHE_MS) } });
  });
  after(() => kiln.stop());

  it('ends its calls, its open subscriptions and the tokens it minted, within the auth cache time', async () => {
    const tenant = await kiln.newTenant();
    const { id } = await tenant.client.generate({ prompt: 'watched' });
    const { token } = await tenant.client.createToken({ generationId: id });
    const byKey = await openRawSocket(kiln.url, { apiKey: tenant.apiKey });
    const byToken = await openRawSocket(kiln.url, { token });
    try {
      byKey.subscribe(1, { generationId: id });
      byToken.subscribe(1, { generationId: id });
      await byKey.reply(1, isStarted);
      await byToken.reply(1, isStarted);

      // As the CLI does it, from another process: this one learns of it from the database.
      const keyId = (await kiln.app.database.db.selectFrom('api_keys').select('id').where('tenant_id', '=', tenant.tenantId).executeTakeFirstOrThrow()).id;
      assert.equal((await revokeApiKey(kiln.app.database.db, keyId)).kind, 'revoked');
      const revokedAt = Date.now();

      const [keyEnded, tokenEnded] = await Promise.all([byKey.reply(1, isError('UNAUTHORIZED')), byToken.reply(1, isError('UNAUTHORIZED'))]);
      const within = AUTH_CACHE_MS + 1_000 + 500; // the cache, the soonest recheck, some slack
      assert.ok(Date.now() - revokedAt < within, `ended within ${within} ms`);
      assert.match(keyEnded.error?.message ?? '', /revoked/);
      assert.match(tokenEnded.error?.message ?? '', /revoked with the API key that minted it/);

      // The sockets stay open, but open nothing more; HTTP refuses both too.
      byKey.subscribe(2, { generationId: id });
      byToken.subscribe(2, { generationId: id });
      await byKey.reply(2, isError('UNAUTHORIZED'));
      await byToken.reply(2, isError('UNAUTHORIZED'));
      await rejects(tenant.client.status({ id }), 'UNAUTHORIZED');
      await refusedOverHttp(kiln.url, token, id, /revoked/);
    } finally {
      byKey.close();
      byToken.close();
    }
  });
});

describe('an expired token', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_ROLE: 'api' } });
  });
  after(() => kiln.stop());

  it('is refused everywhere: HTTP, its open subscription, and a new one on its open socket', async () => {
    const { id } = await kiln.client.generate({ prompt: 'short-lived access' });
    const { token, expiresAt } = await kiln.client.createToken({ generationId: id, ttlSeconds: 10 });
    const socket = await openRawSocket(kiln.url, { token });
    try {
      socket.subscribe(1, { generationId: id });
      await socket.reply(1, isStarted);
      // The shortest token allowed, waited out rather than faking the clock.
      const ended = await socket.reply(1, isError('UNAUTHORIZED'), 15_000);
      assert.ok(Date.now() >= new Date(expiresAt).getTime(), 'not before it expired');
      assert.ok(Date.now() < new Date(expiresAt).getTime() + 2_000, 'and soon after');
      assert.match(ended.error?.message ?? '', /expired/);
      socket.subscribe(2, { generationId: id });
      assert.match((await socket.reply(2, isError('UNAUTHORIZED'))).error?.message ?? '', /expired/);
      await refusedOverHttp(kiln.url, token, id, /expired/);
    } finally {
      socket.close();
    }
  });
});

describe('tenant isolation', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('holds on every procedure, the asset route and the socket', async () => {
    // The owner's finished work, with assets, in a batch.
    const { batchId, ids } = await kiln.client.batch({ items: [{ prompt: 'private one', platforms: ['thumbnail'] }] });
    const id = ids[0]!;
    const done = await kiln.client.waitFor(id, { timeoutMs: 60_000 });
    assert.equal(done.state, 'succeeded');
    // And an image source of the owner's: its original, uploaded back.
    const original = done.assets.find((asset) => asset.kind === 'original')!;
    const originalBytes = new Uint8Array(await (await fetch(original.url)).arrayBuffer());
    const source = await kiln.client.sources.upload(originalBytes);
    const stranger = await kiln.newTenant();
    const tenantWide = await openRawSocket(kiln.url, { apiKey: stranger.apiKey });
    tenantWide.subscribe(1, {});
    await tenantWide.reply(1, isStarted);

    // Each procedure, asked by the stranger about the owner's ids.
    const checks: Record<string, () => Promise<unknown>> = {
      // First, before the stranger has work of its own: the owner's spend is not in its usage.
      credits: async () => assert.deepEqual((await stranger.client.credits()).usage, []),
      generate: async () => assert.notEqual((await stranger.client.generate({ prompt: 'own', idempotencyKey: 'shared-key' })).id, id),
      batch: async () => assert.ok(!(await stranger.client.batch({ items: [{ prompt: 'own' }] })).ids.includes(id)),
      status: () => rejects(stranger.client.status({ id }), 'NOT_FOUND'),
      chain: () => rejects(stranger.client.chain({ id }), 'NOT_FOUND'),
      batchStatus: () => rejects(stranger.client.batchStatus({ batchId }), 'NOT_FOUND'),
      list: async () => {
        assert.ok(!(await stranger.client.list()).items.some((item) => item.id === id));
        assert.equal((await stranger.client.list({ batchId })).items.length, 0);
      },
      cancel: () => rejects(stranger.client.cancel({ id }), 'NOT_FOUND'),
      cancelBatch: () => rejects(stranger.client.cancelBatch({ batchId }), 'NOT_FOUND'),
      'ops.stats': async () => assert.equal((await stranger.client.stats()).generations.succeeded, 0),
      // The model table is the same for everyone; what differs is only what each tier may use.
      models: async () => assert.deepEqual((await stranger.client.models()).map((model) => model.id), (await kiln.client.models()).map((model) => model.id)),
      createToken: async () => {
        await rejects(stranger.client.createToken({ generationId: id }), 'NOT_FOUND');
        await rejects(stranger.client.createToken({ batchId }), 'NOT_FOUND');
      },
      onUpdate: async () => {
        await rejects(stranger.client.watch({ generationId: id }).next(), 'NOT_FOUND');
        await rejects(stranger.client.watch({ batchId }).next(), 'NOT_FOUND');
      },
      'sources.upload': async () => {
        const own = await stranger.client.sources.upload(originalBytes);
        assert.deepEqual([own.id === source.id, own.deduplicated], [false, false], 'the same bytes are the stranger\'s own source');
      },
      'sources.fromUrl': () => rejects(stranger.client.sources.fromUrl({ url: original.url }), 'BAD_REQUEST', /URL sources are off/),
      'sources.get': () => rejects(stranger.client.sources.get({ id: source.id }), 'NOT_FOUND'),
      'admin.keys.create': () => rejects(stranger.client.trpc.admin.keys.create.mutate({ tenant: 'owner' }), 'FORBIDDEN'),
      'admin.keys.list': () => rejects(stranger.client.trpc.admin.keys.list.query({}), 'FORBIDDEN'),
      'admin.keys.revoke': () => rejects(stranger.client.trpc.admin.keys.revoke.mutate({ key: randomUUID() }), 'FORBIDDEN'),
      'admin.ops.overview': () => rejects(stranger.client.trpc.admin.ops.overview.query(), 'FORBIDDEN'),
      'admin.tenants.list': () => rejects(stranger.client.trpc.admin.tenants.list.query(), 'FORBIDDEN'),
      'admin.tenants.set': () => rejects(stranger.client.trpc.admin.tenants.set.mutate({ tenant: kiln.tenantId, tier: 'free' }), 'FORBIDDEN'),
      'admin.tenants.grant': () => rejects(stranger.client.trpc.admin.tenants.grant.mutate({ tenant: kiln.tenantId, usd: 1 }), 'FORBIDDEN'),
    };
    const router = createAppRouter({ isDev: false, maxUploadBodyBytes: 1024, maxCallsPerHttpRequest: 20, maxMessagesPerFrame: 200, credentialRecheckMs: 1000, observeCall: createCallObserver({ logger: silentLogger, tracer: trace.getTracer('kiln') }) });
    assert.deepEqual(Object.keys(checks).sort(), Object.keys(router._def.procedures).sort(), 'every procedure is checked');
    for (const check of Object.values(checks)) await check();

    // The owner's idempotency key is the owner's alone: the stranger's same key made its own generation.
    assert.equal((await kiln.client.status({ id })).state, 'succeeded', 'the owner still has it, unchanged');

    // Asset URLs name content, not tenants, and need no credentials (img tags, CDNs): the only
    // way to one is the owner's status, list or events, which the stranger cannot read. A key
    // grants nothing at the route: an unknown hash is 404 with the stranger's key or without.
    const asset = done.assets[0]!;
    assert.equal((await fetch(asset.url)).status, 200);
    const unknown = asset.url.replace(/[0-9a-f]{64}/, '0'.repeat(64));
    assert.equal((await fetch(unknown, { headers: { authorization: `Bearer ${stranger.apiKey}` } })).status, 404);
    assert.equal((await fetch(unknown)).status, 404);

    // The stranger's tenant-wide subscription, open all along, saw its own work, none of the owner's.
    const { id: ownersLater } = await kiln.client.generate({ prompt: 'the owner, while the stranger watches' });
    const { id: own } = await stranger.client.generate({ prompt: 'mine to see' });
    const seen = new Set<string>();
    await tenantWide.reply(1, (reply) => {
      const generationId = (reply.result?.data as { data?: { generationId?: string } } | undefined)?.data?.generationId;
      if (generationId) seen.add(generationId);
      return generationId === own;
    });
    assert.ok(!seen.has(ownersLater), 'none of the owner\'s events');
    tenantWide.close();
  });
});
