// Realtime: every stage pushed over WebSocket, in order, exactly once — across reconnects,
// API restarts and processes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TRPCClientError, createKilnClient, type GenerationEvent, type KilnClient } from '../client-sdk/index.ts';
import { freePort } from './support/ports.ts';
import { createTestDatabase, startKiln, type TestKiln } from './support/kiln.ts';
import { startWorkerProcess } from './support/worker-process.ts';

const WORK_STAGES = ['queued', 'started', 'provider.created', 'downloading', 'rendering', 'stored', 'succeeded'];

/** Collects a generation's events until its final one. */
async function collect(client: KilnClient, generationId: string): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const event of client.watch({ generationId }, { signal: AbortSignal.timeout(60_000) })) events.push(event);
  return events;
}

function assertCompleteAndOrdered(all: GenerationEvent[]): void {
  const events = all.filter((event) => event.stage !== 'queue.position'); // progress notes, not log events
  const ids = events.map((event) => event.id);
  assert.equal(new Set(ids).size, ids.length, `no event twice: ${ids.join(' ')}`);
  const positions = ids.map((id) => id.split(':').map(BigInt) as [bigint, bigint]);
  for (let index = 1; index < positions.length; index += 1) {
    const [previousXid, previousId] = positions[index - 1]!;
    const [xid, id] = positions[index]!;
    assert.ok(xid > previousXid || (xid === previousXid && id > previousId), 'events arrive in feed order');
  }
  const stages = events.map((event) => event.stage).filter((stage) => WORK_STAGES.includes(stage));
  assert.deepEqual(stages, WORK_STAGES, `every stage once, in order (got ${events.map((event) => event.stage).join(', ')})`);
}

describe('realtime updates', () => {
  let kiln: TestKiln;
  before(async () => {
    kiln = await startKiln();
  });
  after(() => kiln.stop());

  it('pushes every stage of a generation in order, ending with its assets, and nothing of its neighbours', async () => {
    const { id } = await kiln.client.generate({ prompt: 'watched closely', platforms: ['thumbnail', 'x-post'] });
    const neighbour = await kiln.client.generate({ prompt: 'running alongside', platforms: ['thumbnail'] });
    const events = await collect(kiln.client, id);
    await kiln.client.waitFor(neighbour.id);
    assertCompleteAndOrdered(events);
    const last = events.at(-1)!;
    assert.equal(last.state, 'succeeded');
    assert.equal(last.assets?.filter((asset) => asset.kind === 'variant').length, 2);
    assert.ok(events.every((event) => event.generationId === id));
    const running = events.find((event) => event.stage === 'provider.created');
    assert.equal(running?.state, 'running');
    assert.ok(running?.data.predictionId);
  });

  it('replays the whole history to a late subscriber', async () => {
    const { id } = await kiln.client.generate({ prompt: 'already done', platforms: ['thumbnail'] });
    await kiln.client.waitFor(id);
    const events = await collect(kiln.client, id);
    assertCompleteAndOrdered(events);
  });

  it('follows a batch of 20 with a running count', async () => {
    const { batchId, ids } = await kiln.client.batch({ items: Array.from({ length: 20 }, (_, index) => ({ prompt: `batch watch ${index}`, platforms: ['thumbnail' as const] })) });
    const seen = new Map<string, string[]>();
    let lastCounts: Record<string, number> | undefined;
    let succeededSoFar = 0;
    for await (const event of kiln.client.watch({ batchId }, { signal: AbortSignal.timeout(90_000) })) {
      assert.equal(event.batchId, batchId);
      seen.set(event.generationId, [...(seen.get(event.generationId) ?? []), event.stage]);
      assert.ok(event.batch, 'batch events carry counts');
      assert.equal(event.batch.total, 20);
      assert.ok(event.batch.counts.succeeded >= succeededSoFar, 'the count only grows');
      succeededSoFar = event.batch.counts.succeeded;
      lastCounts = event.batch.counts;
      if (event.batch.done) break;
    }
    assert.deepEqual(lastCounts, { queued: 0, running: 0, succeeded: 20, failed: 0, canceled: 0 });
    for (const id of ids) assert.ok(seen.get(id)?.includes('queued'), `saw ${id} from its start`);
  });

  it('streams all of the caller\'s generations, and nothing of another tenant\'s', async () => {
    const other = await kiln.newTenant();
    const mine: GenerationEvent[] = [];
    const theirs: GenerationEvent[] = [];
    const controller = new AbortController();
    const watching = (async () => {
      for await (const event of kiln.client.watch({}, { signal: controller.signal })) mine.push(event);
    })();
    const watchingOther = (async () => {
      for await (const event of other.client.watch({}, { signal: controller.signal })) theirs.push(event);
    })();
    await new Promise((resolve) => setTimeout(resolve, 300)); // both subscriptions are live
    const { id } = await kiln.client.generate({ prompt: 'only mine', platforms: ['thumbnail'] });
    await kiln.client.waitFor(id);
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    await Promise.all([watching, watchingOther]);
    assert.ok(mine.some((event) => event.generationId === id && event.stage === 'succeeded'));
    assert.equal(theirs.length, 0);
    await assert.rejects(collect(other.client, id), (error) => error instanceof TRPCClientError && error.data?.code === 'NOT_FOUND');
  });

  it('misses nothing that happens after a subscription has started, even for the first subscribers of a process', async () => {
    const controller = new AbortController();
    const received = Array.from({ length: 10 }, () => [] as GenerationEvent[]);
    const started: Promise<void>[] = [];
    const loops = received.map((events) => {
      let markStarted!: () => void;
      started.push(new Promise<void>((resolve) => (markStarted = resolve)));
      return (async () => {
        for await (const event of kiln.client.watch({}, { signal: controller.signal, onStarted: markStarted })) events.push(event);
      })();
    });
    await Promise.all(started);
    const { id } = await kiln.client.generate({ prompt: 'right after subscribing', platforms: ['thumbnail'] });
    await kiln.client.waitFor(id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    await Promise.all(loops);
    for (const events of received) {
      assertCompleteAndOrdered(events.filter((event) => event.generationId === id));
    }
  });

  it('rejects bad subscriptions with typed errors, and keeps other subscriptions alive', async () => {
    await assert.rejects(collect(kiln.client, 'not-a-uuid'), (error) => error instanceof TRPCClientError && error.data?.code === 'BAD_REQUEST');
    const stranger = createKilnClient({ url: kiln.url, apiKey: 'kiln_sk_wrong' });
    const anonymous = createKilnClient({ url: kiln.url, apiKey: '' });
    try {
      const { id } = await kiln.client.generate({ prompt: 'unaffected', platforms: ['thumbnail'] });
      const good = collect(kiln.client, id);
      await assert.rejects(collect(stranger, id), (error) => error instanceof TRPCClientError && error.data?.code === 'UNAUTHORIZED');
      await assert.rejects(collect(anonymous, id), (error) => error instanceof TRPCClientError && error.data?.code === 'UNAUTHORIZED');
      assertCompleteAndOrdered(await good);
    } finally {
      stranger.close();
      anonymous.close();
    }
  });

  it('resumes after the client\'s socket drops, missing nothing and repeating nothing', async () => {
    const sockets: WebSocket[] = [];
    const Recording = class extends WebSocket {
      constructor(url: string | URL, protocols?: ConstructorParameters<typeof WebSocket>[1]) {
        super(url, protocols);
        sockets.push(this);
      }
    };
    const client = createKilnClient({ url: kiln.url, apiKey: kiln.apiKey, WebSocket: Recording });
    try {
      const { id } = await client.generate({ prompt: 'drop me [sim:slow=1500]', platforms: ['thumbnail'] });
      const events: GenerationEvent[] = [];
      for await (const event of client.watch({ generationId: id }, { signal: AbortSignal.timeout(60_000) })) {
        events.push(event);
        if (event.stage === 'provider.created') sockets.at(-1)?.close(); // the network goes away
      }
      assert.ok(sockets.length >= 2, 'the client reconnected');
      assertCompleteAndOrdered(events);
    } finally {
      client.close();
    }
  });
});

describe('realtime across processes', () => {
  it('delivers a separate worker process\'s events to the API, and survives an API restart', async () => {
    const databaseUrl = await createTestDatabase();
    const port = await freePort();
    const env = { KILN_SIMULATOR_LATENCY_MS: '1500-2000' };
    // The worker runs in its own process, with its own simulator.
    const worker = await startWorkerProcess({ ...env, DATABASE_URL: databaseUrl });
    let api = await startKiln({ databaseUrl, env: { ...env, KILN_ROLE: 'api', PORT: String(port) } });
    const client = createKilnClient({ url: api.url, apiKey: api.apiKey });
    try {
      await worker.ready;
      const { id } = await client.generate({ prompt: 'crosses processes', platforms: ['thumbnail'] });
      const events: GenerationEvent[] = [];
      let restarted = false;
      for await (const event of client.watch({ generationId: id }, { signal: AbortSignal.timeout(60_000) })) {
        events.push(event);
        if (event.stage === 'provider.created' && !restarted) {
          restarted = true;
          // The API process restarts on the same address while the worker carries on.
          const dataDir = api.dataDir;
          await api.app.stop();
          api = await startKiln({ databaseUrl, dataDir, env: { ...env, KILN_ROLE: 'api', PORT: String(port) } });
        }
      }
      assert.ok(restarted);
      assertCompleteAndOrdered(events);
    } finally {
      client.close();
      await api.stop();
      await worker.stop();
    }
  });
});

describe('events held back by an older transaction', () => {
  it('reaches a subscriber that arrived after the event was announced, with nothing announced since', async () => {
    // API only: nothing else writes events, so no later announcement wakes the feed by chance.
    const api = await startKiln({ env: { KILN_ROLE: 'api' } });
    const holder = new pg.Client({ connectionString: api.databaseUrl });
    await holder.connect();
    try {
      const { id } = await api.client.generate({ prompt: 'held back', platforms: ['thumbnail'] });
      // A writing transaction that began first: until it ends, later transactions' events are
      // not yet in feed order, so the cancel's event is held back when it is announced.
      await holder.query('BEGIN');
      await holder.query('SELECT pg_current_xact_id()');
      await api.client.cancel({ id });
      const waiting = api.client.waitFor(id, { timeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.query('COMMIT'); // writes no event: announces nothing
      assert.equal((await waiting).state, 'canceled');
    } finally {
      await holder.end();
      await api.stop();
    }
  });
});

describe('queue position', () => {
  it('tells a queued generation where it stands and when it should run, in status and in pushed updates', async () => {
    // Some history first, so the lane has a pace to estimate from…
    const full = await startKiln();
    const { databaseUrl } = full;
    for (let index = 0; index < 3; index += 1) {
      const { id } = await full.client.generate({ prompt: `history ${index}`, platforms: ['thumbnail'] });
      await full.client.waitFor(id);
    }
    await full.stop();
    // …then an API with no worker running, so new work stays queued.
    const api = await startKiln({ databaseUrl, env: { KILN_ROLE: 'api' } });
    try {
      const ids: string[] = [];
      for (let index = 0; index < 3; index += 1) ids.push((await api.client.generate({ prompt: `waiting ${index}` })).id);
      const third = await api.client.status({ id: ids[2]! });
      assert.equal(third.queue?.position, 2);
      assert.ok(third.queue?.estimatedStartAt && third.queue.estimatedFinishAt, 'estimates from the lane\'s recent pace');
      assert.ok(new Date(third.queue.estimatedFinishAt) > new Date(third.queue.estimatedStartAt));
      const urgent = await api.client.generate({ prompt: 'urgent', priority: 5 });
      assert.equal((await api.client.status({ id: urgent.id })).queue?.position, 0, 'higher priority goes first');

      for await (const event of api.client.watch({ generationId: ids[2]! }, { signal: AbortSignal.timeout(10_000) })) {
        if (event.stage !== 'queue.position') continue;
        assert.equal(event.state, 'queued');
        assert.equal(event.data.position, 3, 'three ahead now, counting the urgent one');
        break;
      }
      const running = await api.client.status({ id: ids[0]! });
      assert.ok(running.queue, 'still queued');
    } finally {
      await api.stop();
    }
  });
});
