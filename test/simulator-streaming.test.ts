// The simulator's urls.stream: server-sent events with the prediction's logs as they are written,
// its outputs, and an ending that says how it ended — as Replicate's streams do.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type Replicate from 'replicate';
import type { Prediction } from 'replicate';
import type { Simulator } from '../jobs/simulator/index.ts';
import { clientFor, startSimulator, stopSimulators, waitForStatus } from './support/simulator.ts';

interface StreamEvent {
  event: string;
  id: string;
  data: string;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** Reads an SSE stream to its end with plain fetch. */
async function readEvents(url: string): Promise<StreamEvent[]> {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const events: StreamEvent[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body ?? []) {
    buffered += decoder.decode(chunk, { stream: true });
    let end = buffered.indexOf('\n\n');
    while (end >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const field = (name: string) =>
        block
          .split('\n')
          .filter((line) => line.startsWith(`${name}: `))
          .map((line) => line.slice(name.length + 2));
      events.push({ event: field('event')[0] ?? '', id: field('id')[0] ?? '', data: field('data').join('\n'), at: Date.now() });
      end = buffered.indexOf('\n\n');
    }
  }
  return events;
}

const kinds = (events: readonly StreamEvent[]): string[] => events.map((e) => e.event);

describe('streaming (urls.stream)', () => {
  let sim: Simulator;
  let client: Replicate;
  before(async () => {
    sim = await startSimulator();
    client = clientFor(sim);
  });
  after(stopSimulators);

  test('the official client streams logs as they are written, then the outputs, then done', async () => {
    const events: { event: string; data: string; at: number }[] = [];
    for await (const event of client.stream('black-forest-labs/flux-dev', { input: { prompt: 'streamed [sim:slow=1500]', num_inference_steps: 10, num_outputs: 2 } })) {
      events.push({ event: event.event, data: String(event.data), at: Date.now() });
    }
    const logs = events.filter((e) => e.event === 'logs');
    const outputs = events.filter((e) => e.event === 'output');
    assert.deepEqual(events.map((e) => e.event).slice(-3), ['output', 'output', 'done']);
    assert.equal(outputs.length, 2);
    for (const output of outputs) assert.match(output.data, /\/out-[01]\.webp$/);
    assert.equal(events.at(-1)?.data, '{}');
    // Lines arrived while it ran, not all at the end.
    const [first] = logs;
    const lastOutput = outputs.at(-1);
    assert.ok(first && lastOutput);
    assert.match(first.data, /^Using seed: \d+$/);
    assert.ok(lastOutput.at - first.at >= 1000, `first log line ${lastOutput.at - first.at} ms before the end`);
    // Every line once, in order: together they are the prediction's logs.
    const id = /\/files\/([a-z0-9]+)\//.exec(outputs[0]?.data ?? '')?.[1] ?? '';
    const prediction = await client.predictions.get(id);
    assert.equal(logs.map((e) => `${e.data}\n`).join(''), prediction.logs);
  });

  test('a client that connects late gets the lines written so far first, then the rest, each once', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-dev', input: { prompt: 'late reader [sim:slow=1500]', num_inference_steps: 10 } });
    await waitForStatus(client, p.id, (x) => (x.logs ?? '').includes(' 2/10 '));
    const events = await readEvents(p.urls.stream ?? '');
    const done = await client.predictions.get(p.id);
    assert.equal(
      events
        .filter((e) => e.event === 'logs')
        .map((e) => `${e.data}\n`)
        .join(''),
      done.logs,
    );
    assert.deepEqual(kinds(events).slice(-2), ['output', 'done']);
  });

  test('every event has an id, "<seconds>:<n>" counting up, as the Python client requires', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'ids' } });
    const events = await readEvents(p.urls.stream ?? '');
    const seconds = Math.floor(Date.parse(p.created_at) / 1000);
    assert.deepEqual(
      events.map((e) => e.id),
      events.map((_, n) => `${seconds}:${n}`),
    );
  });

  test('a failed run ends with an error event carrying the message, then done with reason "error"', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'boom [sim:fail]' } });
    const events = await readEvents(p.urls.stream ?? '');
    const failed = await client.predictions.get(p.id);
    assert.deepEqual(kinds(events).slice(-2), ['error', 'done']);
    assert.deepEqual(JSON.parse(events.at(-2)?.data ?? ''), { detail: failed.error });
    assert.deepEqual(JSON.parse(events.at(-1)?.data ?? ''), { reason: 'error' });
    assert.equal(kinds(events).includes('output'), false);
    // The official client surfaces the error event as a thrown error.
    await assert.rejects(async () => {
      for await (const event of client.stream('black-forest-labs/flux-schnell', { input: { prompt: 'boom again [sim:fail]' } })) void event;
    }, /Simulated model failure/);
  });

  test('a canceled run ends with done and reason "canceled", without outputs', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'stopped [sim:slow=5000]' } });
    await waitForStatus(client, p.id, (x) => x.status === 'processing');
    const reading = readEvents(p.urls.stream ?? '');
    await client.predictions.cancel(p.id);
    const events = await reading;
    assert.equal(events.at(-1)?.event, 'done');
    assert.deepEqual(JSON.parse(events.at(-1)?.data ?? ''), { reason: 'canceled' });
    assert.equal(kinds(events).includes('output'), false);
  });

  test('a stream open when the simulator stops just ends: no done event for a run that did not end', async () => {
    const stopping = await startSimulator();
    const p = await clientFor(stopping).predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'cut off [sim:slow=5000]' } });
    await waitForStatus(clientFor(stopping), p.id, (x) => x.status === 'processing');
    const reading = readEvents(p.urls.stream ?? '');
    await sleep(50);
    await stopping.stop();
    const events = await reading;
    assert.ok(events.length > 0, 'the lines so far arrived');
    assert.equal(kinds(events).includes('done'), false);
  });

  test('a finished prediction streams everything at once and ends; an unknown one is a 404', async () => {
    const p: Prediction = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'already done' }, wait: 10 });
    const events = await readEvents(p.urls.stream ?? '');
    assert.deepEqual(kinds(events).slice(-2), ['output', 'done']);
    assert.equal(events.filter((e) => e.event === 'logs').map((e) => `${e.data}\n`).join(''), p.logs);
    assert.equal((await fetch(`${sim.url}/stream/doesnotexist0000000000000a`)).status, 404);
  });
});
