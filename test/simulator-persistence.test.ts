// A simulator with a data folder keeps its predictions and uploaded files: started again on the
// same folder it knows them, and those that were running finish at the times drawn when they
// were created, measured by the wall clock — as a real provider's would while its client was down.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Prediction } from 'replicate';
import { createSimulator, type Simulator, type SimulatorOptions } from '../jobs/simulator/index.ts';
import { Journal } from '../jobs/simulator/journal.ts';
import { api, clientFor, createRaw, waitForStatus } from './support/simulator.ts';

const folders: string[] = [];
const running = new Set<Simulator>();

function newDataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-sim-data-'));
  folders.push(dir);
  return dir;
}

/** A simulator on `dataDir`, fast, with its own generated token (kept in the folder). */
async function startOn(dataDir: string, options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = createSimulator({ dataDir, latencyMs: { min: 50, max: 100 }, queueDelayMs: 20, imageSize: 256, ...options });
  await sim.start();
  running.add(sim);
  return sim;
}

async function stop(sim: Simulator): Promise<void> {
  await sim.stop();
  running.delete(sim);
}

after(async () => {
  await Promise.all([...running].map((sim) => sim.stop()));
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

const withoutUrls = (p: Prediction): Omit<Prediction, 'urls' | 'output'> => {
  const { urls: _urls, output: _output, ...rest } = p;
  return rest;
};

describe('a simulator with a data folder, stopped and started again', () => {
  test('knows its predictions (and lists them in order), its token and its webhook secret', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir);
    const client = clientFor(first);
    const done = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'kept', seed: 3 }, wait: 10 });
    const failed = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'kept too [sim:fail]' }, wait: 10 });
    const token = first.apiToken;
    const secret = first.webhookSecret;
    await stop(first);

    const second = await startOn(dataDir);
    assert.equal(second.apiToken, token, 'the generated token is the account\'s, kept in the folder');
    assert.equal(second.webhookSecret, secret);
    const again = clientFor(second);
    const read = await again.predictions.get(done.id);
    assert.deepEqual(withoutUrls(read), withoutUrls(done));
    // Its outputs are served by the new process, at its address.
    const url = (read.output as string[])[0] ?? '';
    assert.ok(url.startsWith(second.url));
    assert.equal((await fetch(url)).status, 200);
    assert.deepEqual(
      (await again.predictions.list()).results.map((p) => p.id),
      [failed.id, done.id],
    );
    // New predictions come after the old ones.
    const next = await createRaw(second, { prompt: 'after the restart' });
    assert.deepEqual(
      (await again.predictions.list()).results.map((p) => p.id),
      [next.id, failed.id, done.id],
    );
  });

  test('a prediction running at the stop finishes after its drawn run time, measured from its start', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir);
    const running = await createRaw(first, { prompt: 'spans the restart [sim:slow=2000]' });
    const started = await waitForStatus(clientFor(first), running.id, (p) => p.status === 'processing');
    await stop(first);
    await sleep(300);

    const second = await startOn(dataDir);
    const client = clientFor(second);
    assert.equal((await client.predictions.get(running.id)).status, 'processing', 'still running after the restart');
    const done = await waitForStatus(client, running.id, (p) => p.status === 'succeeded', 10_000);
    assert.equal(done.started_at, started.started_at);
    assert.equal(Date.parse(done.completed_at ?? '') - Date.parse(done.started_at ?? ''), 2000, 'its drawn run time, not restarted');
    assert.equal(done.metrics?.predict_time, 2);
  });

  test('what fell due while it was down has happened, at the time it was due', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir, { minCancelAfterMs: 0 });
    const finishes = await createRaw(first, { prompt: 'finishes while down [sim:slow=300]' });
    const deadline = await createRaw(first, { prompt: 'deadline while down [sim:slow=5000]' }, { 'cancel-after': '400ms' });
    await stop(first);
    await sleep(800);

    const second = await startOn(dataDir, { minCancelAfterMs: 0 });
    const client = clientFor(second);
    const finished = await client.predictions.get(finishes.id);
    assert.equal(finished.status, 'succeeded');
    assert.equal(Date.parse(finished.completed_at ?? '') - Date.parse(finished.started_at ?? ''), 300);
    const canceled = (await client.predictions.get(deadline.id)) as Prediction & { deadline?: string };
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.completed_at, canceled.deadline, 'canceled at its deadline, not at the restart');
    assert.equal(second.stats().predictions.succeeded, 1, 'a prediction that ended while down counts once it is known to have');
  });

  test('removed data stays removed', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir, { outputRetentionMs: 100 });
    const p = await clientFor(first).predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'private' }, wait: 10 });
    await sleep(300); // removed, and pruned from memory
    await stop(first);
    assert.equal(readFileSync(path.join(dataDir, 'journal.jsonl'), 'utf8').includes('private'), false, 'the input is gone from the data folder too');
    const second = await startOn(dataDir, { outputRetentionMs: 100 });
    const read = await clientFor(second).predictions.get(p.id);
    assert.deepEqual([read.data_removed, read.input, read.output, read.logs], [true, {}, null, '']);
  });

  test('uploaded files survive with their bytes', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir);
    const bytes = Buffer.from('a file that outlives the process');
    const file = await clientFor(first).files.create(new File([bytes], 'kept.txt', { type: 'text/plain' }));
    const deleted = await clientFor(first).files.create(Buffer.from('deleted'));
    await clientFor(first).files.delete(deleted.id);
    await stop(first);

    const second = await startOn(dataDir);
    assert.deepEqual(await clientFor(second).files.get(file.id), { ...file, urls: { get: `${second.url}/v1/files/${file.id}` } });
    const download = await api(second, `/v1/files/${file.id}/download`);
    assert.ok(Buffer.from(await download.arrayBuffer()).equals(bytes));
    assert.equal((await api(second, `/v1/files/${deleted.id}`)).status, 404);
  });

  test('a torn last line (a crash mid-write) is skipped, and later writes are sound', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir);
    const kept = await createRaw(first, { prompt: 'before the crash' });
    await stop(first);
    appendFileSync(path.join(dataDir, 'journal.jsonl'), '{"type":"prediction","seq":99,"id":"torn');

    const second = await startOn(dataDir);
    assert.equal((await api(second, `/v1/predictions/${kept.id}`)).status, 200);
    const later = await createRaw(second, { prompt: 'after the crash' });
    await stop(second);

    const third = await startOn(dataDir);
    for (const id of [kept.id, later.id]) assert.equal((await api(third, `/v1/predictions/${id}`)).status, 200, id);
  });

  test('one simulator at a time per folder; a lock left by a dead process is taken over', async () => {
    const dataDir = newDataDir();
    const first = await startOn(dataDir);
    const second = createSimulator({ dataDir });
    await assert.rejects(second.start(), /in use by process/);
    await second.stop();
    await stop(first);

    // A simulator killed without stopping leaves its LOCK behind, with a pid no longer alive.
    writeFileSync(path.join(dataDir, 'LOCK'), '2147483646');
    const third = await startOn(dataDir);
    assert.equal((await api(third, '/v1/predictions')).status, 200);
  });
});

describe('the journal', () => {
  test('is compacted as it grows, and reads back the last state of everything alive', () => {
    const dataDir = newDataDir();
    const file = path.join(dataDir, 'journal.jsonl');
    const state = new Map<number, number>();
    const journal = Journal.open<{ key: number; value: number }>({ path: file, snapshot: () => [...state].map(([key, value]) => ({ key, value })) });
    for (let i = 0; i < 50_000; i++) {
      const key = i % 100;
      state.set(key, i);
      journal.append({ key, value: i });
    }
    journal.close();
    const lines = readFileSync(file, 'utf8').split('\n').length;
    assert.ok(lines < 20_000, `${lines} lines for 100 live entries after 50,000 changes`);
    const read = Journal.read(file, (value) => value as { key: number; value: number });
    const last = new Map(read.entries.map((e) => [e.key, e.value]));
    assert.deepEqual(last, state);
    assert.equal(read.skippedLines, 0);
  });
});
