// Chains: a generation may start from another's output (`from`), forming a chain. Status shows
// the parent and the children, `chain` answers the chain's latest success with one indexed
// query, a request may build on a generation still running (it waits for its output), and what
// builds on a failure fails with it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import sharp from 'sharp';
import type { GenerationStatus } from '../client-sdk/index.ts';
import { updateTenant } from '../db/tenants.ts';
import { fieldsOf, rejects } from './support/rejections.ts';
import { startKiln, type TestKiln } from './support/kiln.ts';

const original = (status: GenerationStatus) => status.assets.find((asset) => asset.kind === 'original' && asset.outputIndex === 0);

async function pixelsOf(url: string): Promise<{ width: number; height: number }> {
  const meta = await sharp(Buffer.from(await (await fetch(url)).arrayBuffer())).metadata();
  return { width: meta.width ?? 0, height: meta.height ?? 0 };
}

describe('chains', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln({ env: { KILN_AUTH_CACHE_MS: '0' } });
    await updateTenant(kiln.app.database.db, kiln.tenantId, { tier: 'pro' });
  });
  after(() => kiln.stop());

  it('builds a chain of three, each from the last, and shows parents, children and the latest', async () => {
    const first = await kiln.client.waitFor((await kiln.client.generate({ prompt: 'a teapot on a table', seed: 3, platforms: ['thumbnail'] })).id);
    assert.equal(first.state, 'succeeded');
    const second = await kiln.client.waitFor((await kiln.client.generate({ operation: 'edit', from: first.id, prompt: 'make the teapot blue', seed: 4, platforms: ['thumbnail'] })).id);
    assert.equal(second.state, 'succeeded', JSON.stringify(second.error));
    const third = await kiln.client.waitFor((await kiln.client.generate({ operation: 'upscale', from: second.id, scale: 2, platforms: ['thumbnail'] })).id);
    assert.equal(third.state, 'succeeded', JSON.stringify(third.error));

    // Pixels: the edit keeps its parent's size and changes it; the upscale doubles the edit.
    const [a, b, c] = await Promise.all([first, second, third].map((status) => pixelsOf(original(status)!.url)));
    assert.deepEqual(b, a);
    assert.notEqual(original(second)?.contentHash, original(first)?.contentHash);
    assert.deepEqual(c, { width: b!.width * 2, height: b!.height * 2 });

    // Parents and children, as status tells them.
    const [root, middle, last] = await Promise.all([first, second, third].map((status) => kiln.client.status({ id: status.id })));
    assert.equal(root!.from, null);
    assert.deepEqual(middle!.from, { generationId: first.id, output: 0 });
    assert.deepEqual(last!.from, { generationId: second.id, output: 0 });
    assert.deepEqual(root!.children.map((child) => [child.id, child.operation]), [[second.id, 'edit']]);
    assert.deepEqual(middle!.children.map((child) => [child.id, child.operation]), [[third.id, 'upscale']]);
    assert.deepEqual(last!.children, []);
    assert.deepEqual([root, middle, last].map((status) => status!.chainId), [first.id, first.id, first.id]);
    assert.equal(middle!.sourceId, null, 'it starts from a generation, not a source');

    // The chain's latest success, asked of any member.
    for (const member of [first.id, second.id, third.id]) {
      const chain = await kiln.client.chain({ id: member });
      assert.equal(chain.chainId, first.id);
      assert.equal(chain.latest?.id, third.id);
    }
    // A generation in no chain is its own.
    const alone = await kiln.client.waitFor((await kiln.client.generate({ prompt: 'alone', seed: 1, platforms: ['thumbnail'] })).id);
    assert.deepEqual(await kiln.client.chain({ id: alone.id }).then((chain) => [chain.chainId, chain.latest?.id]), [null, alone.id]);
  });

  it('finds the latest of a chain with one probe of its index', async () => {
    const plan = await kiln.app.database.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL enable_seqscan = off`.execute(trx);
      const { rows } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN SELECT * FROM generations
        WHERE chain_id = ${kiln.tenantId}::uuid AND state = 'succeeded' AND tenant_id = ${kiln.tenantId}::uuid
        ORDER BY finished_at DESC, id DESC LIMIT 1`.execute(trx);
      return rows.map((row) => row['QUERY PLAN']).join('\n');
    });
    assert.match(plan, /Index Scan using generations_chain_latest/);
    assert.doesNotMatch(plan, /Sort/);
  });

  it('waits for a parent still running, then starts from its output', async () => {
    const parent = await kiln.client.generate({ prompt: '[sim:slow=600] a slow lighthouse', seed: 5, platforms: ['thumbnail'] });
    const child = await kiln.client.generate({ operation: 'remove-background', from: parent.id, platforms: ['thumbnail'], formats: ['png'] });
    const waiting = await kiln.client.status({ id: child.id });
    assert.equal(waiting.state, 'queued');
    assert.equal(waiting.stage, 'input.awaited');
    assert.equal(waiting.queue, null, 'not in a lane while its input does not exist');
    const done = await kiln.client.waitFor(child.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const parentDone = await kiln.client.status({ id: parent.id });
    assert.ok(done.startedAt && parentDone.finishedAt && done.startedAt >= parentDone.finishedAt, 'started once its parent had finished');
    const stages = done.events.map((event) => event.stage);
    assert.deepEqual(stages.slice(0, 3), ['queued', 'input.awaited', 'input.ready']);
    // Pushed to subscribers as queued, as it is: not in a lane, but not running either.
    const pushed = [];
    for await (const event of kiln.client.watch({ generationId: child.id })) {
      pushed.push([event.stage, event.state]);
      if (event.state === 'succeeded') break;
    }
    assert.deepEqual(pushed.slice(0, 3), [['queued', 'queued'], ['input.awaited', 'queued'], ['input.ready', 'queued']]);
    assert.equal((await sharp(Buffer.from(await (await fetch(original(done)!.url)).arrayBuffer())).metadata()).hasAlpha, true, 'the background really removed');
  });

  it('loses no child queued while its parent ends', async () => {
    // Children arrive before, during and after the parent's completion: each one either sees the
    // parent running and waits (the parent cannot end unseen), or sees it ended and starts.
    const parent = await kiln.client.generate({ prompt: '[sim:slow=700] ends while children arrive', seed: 6, platforms: ['thumbnail'] });
    const children: string[] = [];
    for (let round = 0; round < 40; round += 1) {
      children.push((await kiln.client.generate({ operation: 'upscale', from: parent.id, platforms: ['thumbnail'] })).id);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const finals = await Promise.all(children.map((id) => kiln.client.waitFor(id, { timeoutMs: 60_000 })));
    assert.deepEqual(new Set(finals.map((status) => status.state)), new Set(['succeeded']));
    assert.ok(finals.some((status) => status.events.some((event) => event.stage === 'input.awaited')), 'some waited for the parent');
  });

  it('fails what builds on a failure, and refuses to build on one that already failed', async () => {
    const parent = await kiln.client.generate({ prompt: '[sim:slow=300] [sim:fail] doomed', platforms: ['thumbnail'] });
    const child = await kiln.client.generate({ operation: 'upscale', from: parent.id, platforms: ['thumbnail'] });
    const grandchild = await kiln.client.generate({ operation: 'upscale', from: child.id, platforms: ['thumbnail'] });
    const failed = await kiln.client.waitFor(grandchild.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error?.code, 'input_failed');
    assert.match(failed.error?.message ?? '', new RegExp(`builds on \\(${child.id}\\) failed: the generation it builds on \\(${parent.id}\\) failed`));
    assert.equal((await kiln.client.status({ id: child.id })).error?.code, 'input_failed');
    await rejects(kiln.client.generate({ operation: 'upscale', from: parent.id }), 'CONFLICT', new RegExp(`generation ${parent.id} failed; build on a generation that succeeded or is still running`));
  });

  it('answers another tenant\'s generation exactly as a missing one, and refuses unclear inputs, writing nothing', async () => {
    const mine = await kiln.client.waitFor((await kiln.client.generate({ prompt: 'mine', seed: 8, platforms: ['thumbnail'] })).id);
    const other = await kiln.newTenant();
    const before = await kiln.countGenerations();
    const theirs = await rejects(other.client.generate({ operation: 'upscale', from: mine.id }), 'NOT_FOUND');
    const missing = await rejects(other.client.generate({ operation: 'upscale', from: '00000000-0000-4000-8000-000000000000' }), 'NOT_FOUND');
    assert.equal(theirs.message.replace(mine.id, 'ID'), missing.message.replace('00000000-0000-4000-8000-000000000000', 'ID'));
    assert.deepEqual(Object.keys(fieldsOf(theirs)), ['from']);
    const batch = await rejects(other.client.batch({ items: [{ prompt: 'fine' }, { operation: 'upscale', from: mine.id }] }), 'NOT_FOUND');
    assert.deepEqual(Object.keys(fieldsOf(batch)), ['items.1.from']);
    await rejects(other.client.status({ id: mine.id }), 'NOT_FOUND');

    const source = await kiln.client.sources.upload(await sharp({ create: { width: 32, height: 32, channels: 3, background: '#406080' } }).png().toBuffer());
    const both = await rejects(kiln.client.generate({ operation: 'upscale', from: mine.id, sourceId: source.id }), 'BAD_REQUEST', /give sourceId or from, not both/);
    assert.deepEqual(Object.keys(fieldsOf(both)), ['from']);
    const neither = await rejects(kiln.client.generate({ operation: 'upscale' }), 'BAD_REQUEST', /upscale starts from an image: give sourceId \(an image source\) or from \(a generation to build on\)/);
    assert.deepEqual(Object.keys(fieldsOf(neither)), ['sourceId']);
    const output = await rejects(kiln.client.generate({ operation: 'upscale', from: mine.id, fromOutput: 2 }), 'BAD_REQUEST', /makes 1 output; fromOutput must be below 1/);
    assert.deepEqual(Object.keys(fieldsOf(output)), ['fromOutput']);
    await rejects(kiln.client.generate({ operation: 'upscale', sourceId: source.id, fromOutput: 1 }), 'BAD_REQUEST', /fromOutput goes with from/);
    assert.equal(await kiln.countGenerations(), before);
  });

  it('builds on any output of a generation with several', async () => {
    const four = await kiln.client.waitFor((await kiln.client.generate({ prompt: 'four chairs', seed: 21, outputs: 4, platforms: ['thumbnail'] })).id);
    assert.equal(four.state, 'succeeded');
    const fromThird = await kiln.client.waitFor((await kiln.client.generate({ operation: 'upscale', from: four.id, fromOutput: 2, platforms: ['thumbnail'] })).id);
    assert.equal(fromThird.state, 'succeeded', JSON.stringify(fromThird.error));
    assert.deepEqual(fromThird.from, { generationId: four.id, output: 2 });
    const third = four.assets.find((asset) => asset.kind === 'original' && asset.outputIndex === 2)!;
    assert.deepEqual(await pixelsOf(original(fromThird)!.url), { width: third.width * 2, height: third.height * 2 });
  });
});
