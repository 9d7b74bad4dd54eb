// Specification of the Replicate-compatible simulator (jobs/simulator), exercised through the
// official `replicate` client where it can be, and plain fetch where the client would hide the
// behaviour (it retries 429s and GET 5xx internally).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import Replicate, { parseProgressFromLogs, validateWebhook, type Page, type Prediction } from 'replicate';
import sharp from 'sharp';
import { renderImage } from '../jobs/simulator/images.ts';
import { createSimulator, type Simulator, type SimulatorStats } from '../jobs/simulator/index.ts';
import { api, clientFor, createRaw, download, isFinal, outputUrls, startSimulator, stopSimulators, waitForStatus } from './support/simulator.ts';

const SDXL_VERSION = '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b';
const SDXL_LATEST_VERSION = '7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc';
const THROTTLE_BODY = /^\{"detail":"Request was throttled\. Your rate limit resets in ~[1-9]\d*s\."\}$/;

after(stopSimulators);

describe('predictions through the official replicate client', () => {
  let sim: Simulator;
  let client: Replicate;
  before(async () => {
    sim = await startSimulator();
    client = clientFor(sim);
  });

  test('create by model, poll until succeeded, download a real image of the requested size', async () => {
    const created = await client.predictions.create({
      model: 'black-forest-labs/flux-schnell',
      input: { prompt: 'a red fox in fresh snow', seed: 42, aspect_ratio: '16:9', output_format: 'png' },
    });
    assert.equal(created.status, 'starting');
    assert.match(created.id, /^[a-z0-9]{26}$/);
    assert.equal(created.model, 'black-forest-labs/flux-schnell');
    assert.equal(created.version, 'hidden', 'official models report no version, as on Replicate');
    assert.equal(created.output, null);
    assert.equal(created.urls.get, `${sim.url}/v1/predictions/${created.id}`);

    const done = await client.wait(created, { interval: 20 });
    assert.equal(done.status, 'succeeded');
    assert.ok(done.started_at !== undefined && done.completed_at !== undefined);
    assert.equal(typeof done.metrics?.predict_time, 'number');
    assert.deepEqual(parseProgressFromLogs(done), { percentage: 1, current: 4, total: 4 });
    assert.match(done.logs ?? '', /^Using seed: 42$/m);

    const [url] = outputUrls(done);
    assert.ok(url?.endsWith('/out-0.png'));
    const file = await download(url ?? '');
    assert.equal(file.contentType, 'image/png');
    assert.equal(file.contentLength, String(file.bytes.length));
    const meta = await sharp(file.bytes).metadata();
    // 16:9 at imageSize 256: a quarter of flux's 1344×768.
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 336, 192]);
  });

  test('same prompt and seed give byte-identical images; another prompt does not', async () => {
    const run = async (prompt: string): Promise<Buffer> => {
      const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt, seed: 7 }, wait: 10 });
      assert.equal(p.status, 'succeeded');
      const [url] = outputUrls(p);
      return (await download(url ?? '')).bytes;
    };
    const first = await run('a lighthouse at dusk');
    const second = await run('a lighthouse at dusk');
    const other = await run('a lighthouse at dawn');
    assert.ok(first.equals(second), 'same inputs must render identical bytes');
    assert.ok(!first.equals(other), 'another prompt must render a different image');
    const meta = await sharp(first).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 256, 256]);
  });

  test('rendering itself is deterministic (downloads share a cache, so check it directly)', async () => {
    const spec = { prompt: 'a <b>&"quoted"</b> prompt', seed: 9, index: 0, width: 320, height: 240, format: 'jpg' as const, quality: 80 };
    const [a, b] = await Promise.all([renderImage(spec), renderImage(spec)]);
    assert.ok(a.equals(b));
    assert.ok(!a.equals(await renderImage({ ...spec, seed: 10 })));
    assert.ok(!a.equals(await renderImage({ ...spec, index: 1 })));
  });

  test('a missing seed is drawn by the simulator and reported in the logs', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-dev', input: { prompt: 'no seed', num_outputs: 2 }, wait: 10 });
    assert.equal(p.status, 'succeeded');
    assert.match(p.logs ?? '', /^Using seed: \d+$/m);
    assert.equal(outputUrls(p).length, 2);
  });

  test('Prefer: wait returns the finished prediction with status 201', async () => {
    const res = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      headers: { prefer: 'wait=10' },
      json: { input: { prompt: 'sync please', seed: 1 } },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('preference-applied'), 'wait=10');
    const p = (await res.json()) as Prediction;
    assert.equal(p.status, 'succeeded');
    assert.equal(outputUrls(p).length, 1);
  });

  test('Prefer: wait without a number holds up to 60 s and says Preference-Applied: wait; an async create says nothing', async () => {
    const sync = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', headers: { prefer: 'wait' }, json: { input: { prompt: 'sync' } } });
    assert.equal(sync.status, 201);
    assert.equal(sync.headers.get('preference-applied'), 'wait');
    assert.equal(((await sync.json()) as Prediction).status, 'succeeded');
    const async = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', json: { input: { prompt: 'async' } } });
    assert.equal(async.status, 201);
    assert.equal(async.headers.get('preference-applied'), null);
    await async.body?.cancel();
  });

  test('Prefer: wait=n outside 1..60 (or not a number) is refused with 400 before anything is created', async () => {
    const createsBefore = sim.stats().creates;
    for (const prefer of ['wait=0', 'wait=61', 'wait=100', 'wait=soon', 'wait=']) {
      const res = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', headers: { prefer }, json: { input: { prompt: 'x' } } });
      assert.equal(res.status, 400, prefer);
      assert.equal(((await res.json()) as { title: string }).title, 'Invalid Prefer header');
    }
    assert.equal(sim.stats().creates, createsBefore);
    // The replicate client turns `wait: 100` into `Prefer: wait=100`, which Replicate refuses too.
    await assert.rejects(client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'x' }, wait: 100 }), /status 400/);
  });

  test('Prefer: wait=n gives up after n seconds and returns the unfinished prediction', async () => {
    const begin = Date.now();
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'slow [sim:slow=3000]' }, wait: 1 });
    assert.equal(p.status, 'processing');
    assert.ok(Date.now() - begin >= 900);
    await client.predictions.cancel(p.id);
  });

  test('cancel ends a running prediction as canceled; canceling again changes nothing', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'long [sim:slow=5000]' } });
    await waitForStatus(client, p.id, (x) => x.status === 'processing');
    const canceled = await client.predictions.cancel(p.id);
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.output, null);
    const again = await client.predictions.cancel(p.id);
    assert.equal(again.status, 'canceled');
    assert.equal(again.completed_at, canceled.completed_at);
    assert.equal((await client.predictions.get(p.id)).status, 'canceled');
  });


  test('[sim:fail] fails with an error; [sim:nsfw] fails with the NSFW message', async () => {
    const failing = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'boom [sim:fail]' } });
    await assert.rejects(client.wait(failing, { interval: 20 }), /Prediction failed: .+/);
    const failed = await client.predictions.get(failing.id);
    assert.equal(failed.status, 'failed');
    assert.equal(typeof failed.error, 'string');
    assert.equal(failed.output, null);

    const nsfw = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'x [sim:nsfw]' }, wait: 10 });
    assert.equal(nsfw.status, 'failed');
    assert.equal(nsfw.error, 'NSFW content detected. Try running it again, or try a different prompt.');
  });

  test('flux-1.1-pro returns a single URL string, like the real model', async () => {
    const p = await client.predictions.create({ model: 'black-forest-labs/flux-1.1-pro', input: { prompt: 'pro', output_format: 'jpg' }, wait: 10 });
    assert.equal(p.status, 'succeeded');
    assert.equal(typeof p.output, 'string');
    const file = await download(String(p.output));
    assert.equal(file.contentType, 'image/jpeg');
  });

  test('create by version: sdxl version id, owner/name:version, and an unknown version', async () => {
    const byId = await client.predictions.create({ version: SDXL_VERSION, input: { prompt: 'sdxl', width: 512, height: 768, seed: 3 }, wait: 10 });
    assert.equal(byId.status, 'succeeded');
    assert.equal(byId.model, 'stability-ai/sdxl');
    const meta = await sharp((await download(outputUrls(byId)[0] ?? '')).bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 512, 768]);

    assert.equal(byId.version, SDXL_VERSION, 'a community model reports the version that ran');
    const byRef = await api(sim, '/v1/predictions', { method: 'POST', json: { version: `stability-ai/sdxl:${SDXL_VERSION}`, input: { prompt: 'ref' } } });
    assert.equal(byRef.status, 201);
    // The newest public SDXL version, the one Kiln pins.
    const newest = await client.predictions.create({ version: SDXL_LATEST_VERSION, input: { prompt: 'newest' } });
    assert.equal(newest.version, SDXL_LATEST_VERSION);
    const official = await client.predictions.create({ version: 'black-forest-labs/flux-dev', input: { prompt: 'by name' } });
    assert.deepEqual([official.model, official.version], ['black-forest-labs/flux-dev', 'hidden']);

    for (const version of ['f'.repeat(64), 'stability-ai/sdxl']) {
      // A community model needs a version; only official models run by bare name.
      const refused = await api(sim, '/v1/predictions', { method: 'POST', json: { version, input: { prompt: 'x' } } });
      assert.equal(refused.status, 422, version);
      assert.equal(((await refused.json()) as { title: string }).title, 'Invalid version or not permitted');
    }
  });

  test('deployments named like a known model run it, and their predictions name the deployment', async () => {
    const res = await api(sim, '/v1/deployments/acme/flux-schnell/predictions', { method: 'POST', json: { input: { prompt: 'deployed' } } });
    assert.equal(res.status, 201);
    const created = (await res.json()) as Prediction & { deployment?: string };
    assert.equal(created.model, 'black-forest-labs/flux-schnell');
    assert.equal(created.deployment, 'acme/flux-schnell');
    assert.equal(((await client.predictions.get(created.id)) as Prediction & { deployment?: string }).deployment, 'acme/flux-schnell');
    const direct = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'not deployed' } });
    assert.equal('deployment' in direct, false);
    const missing = await api(sim, '/v1/deployments/acme/nothing-here/predictions', { method: 'POST', json: { input: { prompt: 'x' } } });
    assert.equal(missing.status, 404);
  });
});

describe('errors with Replicate status codes and bodies', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startSimulator();
  });

  test('422 lists invalid fields, e.g. a missing prompt', async () => {
    const res = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      json: { input: { seed: 'x', aspect_ratio: '7:1', num_outputs: 9 } },
    });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { title: string; status: number; detail: string; invalid_fields: { type: string; field: string; description: string }[] };
    assert.equal(body.title, 'Input validation failed');
    assert.equal(body.status, 422);
    assert.deepEqual(
      body.invalid_fields.map((f) => [f.type, f.field]),
      [
        // A missing property is reported on the object that lacks it.
        ['required', 'input'],
        ['invalid_type', 'input.seed'],
        ['number_lte', 'input.num_outputs'],
        ['enum', 'input.aspect_ratio'],
      ],
    );
    assert.match(body.detail, /^- input: prompt is required$/m);
    assert.deepEqual(body.invalid_fields[3], { type: 'enum', field: 'input.aspect_ratio', description: body.invalid_fields[3]?.description });
    assert.match(body.invalid_fields[3]?.description ?? '', /^input\.aspect_ratio must be one of the following: "1:1", "16:9"/);
  });

  test('422 for a create body with a field Replicate does not know (its schema has additionalProperties: false)', async () => {
    const createsBefore = sim.stats().creates;
    const res = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      json: { input: { prompt: 'x' }, webhook_url: 'https://example.com/hook', priority: 1 },
    });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { title: string; detail: string; invalid_fields: unknown[] };
    assert.equal(body.title, 'Input validation failed');
    assert.deepEqual(body.invalid_fields, [
      { type: 'additional_property_not_allowed', field: '(root)', description: 'Additional property webhook_url is not allowed' },
      { type: 'additional_property_not_allowed', field: '(root)', description: 'Additional property priority is not allowed' },
    ]);
    assert.match(body.detail, /^- \(root\): Additional property webhook_url is not allowed$/m);
    // `version` belongs to POST /v1/predictions only.
    const versionOnModelRoute = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', json: { version: 'x', input: { prompt: 'x' } } });
    assert.equal(versionOnModelRoute.status, 422);
    assert.equal(sim.stats().creates, createsBefore, 'nothing was created');
  });

  test('the fields Replicate does know are accepted, and checked: input, webhook, webhook_events_filter, stream (and version)', async () => {
    const ok = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      json: { input: { prompt: 'x' }, stream: false, webhook: 'https://example.com/hook', webhook_events_filter: ['completed'] },
    });
    assert.equal(ok.status, 201, await ok.clone().text());
    await ok.body?.cancel();
    const bad = await api(sim, '/v1/predictions', {
      method: 'POST',
      json: { input: 'x', stream: 'yes', webhook: 'not a url', webhook_events_filter: ['finished'] },
    });
    assert.equal(bad.status, 422);
    const body = (await bad.json()) as { invalid_fields: { type: string; field: string }[] };
    assert.deepEqual(
      body.invalid_fields.map((f) => [f.type, f.field]),
      [
        ['invalid_type', 'input'],
        ['required', '(root)'], // version
        ['invalid_type', 'stream'],
        ['format', 'webhook'],
        ['enum', 'webhook_events_filter.0'],
      ],
    );
  });

  test('422 for sdxl sizes that are not multiples of 8', async () => {
    const res = await api(sim, '/v1/predictions', { method: 'POST', json: { version: SDXL_VERSION, input: { prompt: 'x', width: 1001 } } });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { invalid_fields: { field: string; type: string }[] };
    assert.deepEqual(body.invalid_fields, [{ type: 'multiple_of', field: 'input.width', description: 'Must be a multiple of 8' }]);
  });

  test('401 without a valid token', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${sim.apiToken}`]) {
      const res = await fetch(`${sim.url}/v1/predictions`, { headers: authorization === undefined ? {} : { authorization } });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 });
    }
    // Replicate also accepts the older `Token` scheme.
    assert.equal((await fetch(`${sim.url}/v1/predictions`, { headers: { authorization: `Token ${sim.apiToken}` } })).status, 200);
  });

  test('404 for unknown models, predictions and routes; 405 for a wrong method', async () => {
    const notFound = { title: 'Not found', detail: 'The requested resource could not be found.', status: 404 };
    for (const res of [
      await api(sim, '/v1/models/nobody/nothing/predictions', { method: 'POST', json: { input: { prompt: 'x' } } }),
      await api(sim, '/v1/predictions/doesnotexist0000000000000a'),
      await api(sim, '/v1/nothing'),
    ]) {
      assert.equal(res.status, 404);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.deepEqual(await res.json(), notFound);
    }
    const wrong = await api(sim, '/v1/predictions', { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET, POST');
    assert.deepEqual(await wrong.json(), { title: 'Method not allowed', detail: 'Method "DELETE" not allowed.', status: 405 });
  });

  test('every error answer is a problem document: application/problem+json with title, detail and status', async () => {
    const answers = [
      await fetch(`${sim.url}/v1/predictions`),
      await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', json: { input: {} } }),
      await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', body: '[1' }),
      await api(sim, '/v1/predictions?cursor=bogus'),
    ];
    assert.deepEqual(
      answers.map((res) => res.status),
      [401, 422, 400, 400],
    );
    for (const res of answers) {
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      const body = (await res.json()) as { title: unknown; detail: unknown; status: unknown };
      assert.equal(typeof body.title, 'string');
      assert.equal(typeof body.detail, 'string');
      assert.equal(body.status, res.status);
    }
  });

  test('400 for malformed JSON, 413 for an oversized body', async () => {
    const bad = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', body: '{"input":' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { detail: string }).detail, /JSON/);
    const big = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      json: { input: { prompt: 'x'.repeat(2 * 1024 * 1024) } },
    });
    assert.equal(big.status, 413);
  });

});

describe('Cancel-After', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startSimulator();
  });
  const create = (cancelAfter: string) =>
    api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', headers: { 'cancel-after': cancelAfter }, json: { input: { prompt: 'x' } } });

  test('a bare number means seconds; the prediction shows its deadline, created_at plus the duration', async () => {
    for (const [header, ms] of [['30', 30_000], ['7.5', 7500], ['5m', 300_000], ['1h30m', 5_400_000]] as const) {
      const res = await create(header);
      assert.equal(res.status, 201, await res.clone().text());
      const p = (await res.json()) as Prediction & { deadline?: string };
      assert.equal(typeof p.deadline, 'string', header);
      assert.equal(Date.parse(p.deadline ?? '') - Date.parse(p.created_at), ms, header);
      const read = (await clientFor(sim).predictions.get(p.id)) as Prediction & { deadline?: string };
      assert.equal(read.deadline, p.deadline);
    }
    const without = await createRaw(sim, { prompt: 'no deadline' });
    assert.equal('deadline' in without, false);
  });

  test('below Replicate\'s 5 s minimum it is refused with 400, and so is a malformed one; nothing is created', async () => {
    const createsBefore = sim.stats().creates;
    for (const header of ['4', '4999ms', '300ms', 'soon', '0', '-5s']) {
      const res = await create(header);
      assert.equal(res.status, 400, header);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      const body = (await res.json()) as { title: string; detail: string };
      assert.equal(body.title, 'Invalid Cancel-After header');
    }
    assert.match(((await (await create('2s')).json()) as { detail: string }).detail, /at least 5s/);
    assert.equal((await create('5')).status, 201);
    assert.equal(sim.stats().creates, createsBefore + 1);
  });
});

describe('Cancel-After with the minCancelAfterMs leniency (short deadlines for tests)', () => {
  test('a deadline reached while running cancels the prediction', async () => {
    const sim = await startSimulator({ minCancelAfterMs: 0 });
    const p = await createRaw(sim, { prompt: 'deadline [sim:slow=5000]' }, { 'cancel-after': '300ms' });
    const done = await waitForStatus(clientFor(sim), p.id, isFinal);
    assert.equal(done.status, 'canceled');
    assert.ok(done.started_at !== null);
  });

  test('a deadline reached before processing starts aborts the prediction', async () => {
    const sim = await startSimulator({ minCancelAfterMs: 0, queueDelayMs: 5000 });
    const p = await createRaw(sim, { prompt: 'queued forever' }, { 'cancel-after': '150ms' });
    const done = await waitForStatus(clientFor(sim), p.id, isFinal);
    assert.equal(done.status, 'aborted');
    assert.equal(done.output, null);
    assert.equal(done.error, null);
    assert.equal(done.started_at, null);
    assert.equal(sim.stats().predictions.aborted, 1);
  });
});

test('429 past the create limit, with the exact body and no Retry-After', async () => {
  const sim = await startSimulator({ createsPerMinute: 60, burst: 3 });
  const statuses: number[] = [];
  let throttled: Response | undefined;
  for (let i = 0; i < 4; i++) {
    const res = await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', json: { input: { prompt: `n${i}` } } });
    statuses.push(res.status);
    if (res.status === 429) throttled = res;
    else await res.body?.cancel();
  }
  assert.deepEqual(statuses, [201, 201, 201, 429]);
  assert.ok(throttled !== undefined);
  assert.match(await throttled.text(), THROTTLE_BODY);
  assert.equal(throttled.headers.get('retry-after'), null);
  // Reads have their own bucket.
  assert.equal((await api(sim, '/v1/predictions')).status, 200);
  assert.equal(sim.stats().throttled, 1);
});

test('answers carry Replicate\'s RateLimit-Remaining and RateLimit-Reset headers, per budget; a 429 has 0 remaining', async () => {
  const sim = await startSimulator({ createsPerMinute: 60, readsPerMinute: 600, burst: 3 });
  const remaining = (res: Response) => res.headers.get('ratelimit-remaining');
  const creates: Response[] = [];
  for (let i = 0; i < 4; i++) creates.push(await api(sim, '/v1/models/black-forest-labs/flux-schnell/predictions', { method: 'POST', json: { input: { prompt: `n${i}` } } }));
  assert.deepEqual(creates.map((res) => res.status), [201, 201, 201, 429]);
  assert.deepEqual(creates.map(remaining), ['2', '1', '0', '0']);
  for (const res of creates) assert.ok(Number(res.headers.get('ratelimit-reset')) >= 1);
  // Reads draw on their own budget, and errors past auth carry the headers too.
  const read = await api(sim, '/v1/predictions/doesnotexist0000000000000a');
  assert.equal(read.status, 404);
  assert.equal(remaining(read), '2');
  assert.equal(read.headers.get('ratelimit-reset'), '1');
  // Without a valid token nothing is counted, and Replicate sends no RateLimit headers.
  assert.equal(remaining(await fetch(`${sim.url}/v1/predictions`)), null);
});

test('retryAfterHeader adds Retry-After to 429s', async () => {
  const sim = await startSimulator({ readsPerMinute: 60, burst: 1, retryAfterHeader: true });
  assert.equal((await api(sim, '/v1/predictions')).status, 200);
  const res = await api(sim, '/v1/predictions');
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '1');
});

describe('fault injection', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startSimulator();
  });

  test('throttle { count } answers the next requests 429 (a 429 storm)', async () => {
    sim.faults.set({ throttle: { count: 2 } });
    const first = await api(sim, '/v1/predictions');
    assert.equal(first.status, 429);
    assert.match(await first.text(), THROTTLE_BODY);
    assert.equal((await api(sim, '/v1/predictions')).status, 429);
    assert.equal((await api(sim, '/v1/predictions')).status, 200);
  });

  test('throttle { forMs } answers 429 for a while; the replicate client retries through a short storm', async () => {
    sim.faults.set({ throttle: { forMs: 200 } });
    assert.equal((await api(sim, '/v1/predictions')).status, 429);
    await sleep(250);
    assert.equal((await api(sim, '/v1/predictions')).status, 200);

    sim.faults.set({ throttle: { count: 2 } });
    const page = await clientFor(sim).predictions.list();
    assert.ok(Array.isArray(page.results));
  });

  test('http5xx answers the next requests with that status and a JSON body', async () => {
    sim.faults.set({ http5xx: { count: 1, status: 503 } });
    const res = await api(sim, '/v1/predictions');
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { status: number }).status, 503);
    assert.equal((await api(sim, '/v1/predictions')).status, 200);
    assert.ok(sim.stats().http5xx >= 1);
  });

  test('hang delays answers; a client that times out does not hurt the server', async () => {
    sim.faults.set({ hang: { count: 1, ms: 400 } });
    await assert.rejects(api(sim, '/v1/predictions', { signal: AbortSignal.timeout(50) }), { name: 'TimeoutError' });
    await sleep(450); // the hung request completes into a closed socket
    assert.equal((await api(sim, '/v1/predictions')).status, 200);
  });

  test('faults can be set over HTTP and reset', async () => {
    const set = await fetch(`${sim.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ http5xx: { count: 1, status: 502 }, failureRate: 1 }) });
    assert.equal(set.status, 200);
    assert.equal((await api(sim, '/v1/predictions')).status, 502);
    const p = await clientFor(sim).predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'unlucky' }, wait: 10 });
    assert.equal(p.status, 'failed');
    assert.match(String(p.error), /CUDA out of memory/);

    const invalid = await fetch(`${sim.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ failureRate: 2 }) });
    assert.equal(invalid.status, 400);

    assert.equal((await fetch(`${sim.url}/_sim/reset`, { method: 'POST' })).status, 200);
    const stats = (await (await fetch(`${sim.url}/_sim/stats`)).json()) as SimulatorStats;
    assert.equal(stats.creates, 0);
    assert.equal(stats.http5xx, 0);
    const ok = await clientFor(sim).predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'lucky' }, wait: 10 });
    assert.equal(ok.status, 'succeeded');
  });
});

test('list is newest first and paginated with a cursor', async () => {
  const sim = await startSimulator({ listPageSize: 2 });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await createRaw(sim, { prompt: `item ${i}` })).id);
  const client = clientFor(sim);
  const pages: string[][] = [];
  for await (const page of client.paginate(() => client.predictions.list())) pages.push(page.map((p) => p.id));
  assert.deepEqual(pages, [[ids[2], ids[1]], [ids[0]]]);
});

test('list honours created_after (inclusive) and created_before (exclusive), ISO 8601, and keeps them on the next page', async () => {
  const sim = await startSimulator({ listPageSize: 1 });
  const first = await createRaw(sim, { prompt: 'first' });
  await sleep(20);
  const second = await createRaw(sim, { prompt: 'second' });
  await sleep(20);
  const third = await createRaw(sim, { prompt: 'third' });
  const client = clientFor(sim);
  const ids = async (query: string): Promise<string[]> => {
    const found: string[] = [];
    for await (const page of client.paginate(() => client.request(`/predictions${query}`, { method: 'GET' }).then((r) => r.json() as Promise<Page<Prediction>>))) {
      found.push(...page.map((p) => p.id));
    }
    return found;
  };
  const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;
  assert.deepEqual(await ids(q({ created_after: second.created_at })), [third.id, second.id]);
  assert.deepEqual(await ids(q({ created_before: second.created_at })), [first.id]);
  assert.deepEqual(await ids(q({ created_after: first.created_at, created_before: third.created_at })), [second.id, first.id]);
  // An offset is honoured too: the same instant written in another zone.
  const secondPlus2h = new Date(Date.parse(second.created_at) + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
  assert.deepEqual(await ids(q({ created_after: secondPlus2h })), [third.id, second.id]);
  for (const bad of ['yesterday', '2025-13-45', '1700000000']) {
    const res = await api(sim, `/v1/predictions${q({ created_after: bad })}`);
    assert.equal(res.status, 400, bad);
    assert.equal(((await res.json()) as { title: string }).title, 'Invalid query parameter');
  }
});

test('after the retention period output, input and logs are removed; the prediction can still be read and listed', async () => {
  const sim = await startSimulator({ outputRetentionMs: 300, predictionRetentionMs: 60_000 });
  const client = clientFor(sim);
  const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'ephemeral' }, wait: 10 });
  const [url] = outputUrls(p);
  assert.equal((await fetch(url ?? '')).status, 200);
  assert.equal(p.data_removed, false);
  assert.deepEqual(p.input, { prompt: 'ephemeral' });
  assert.notEqual(p.logs, '');
  await sleep(350);
  assert.equal((await fetch(url ?? '')).status, 404);
  const removed = await client.predictions.get(p.id);
  assert.deepEqual(
    { data_removed: removed.data_removed, output: removed.output, input: removed.input, logs: removed.logs },
    { data_removed: true, output: null, input: {}, logs: '' },
  );
  // What is not data stays: status, times, metrics.
  assert.equal(removed.status, 'succeeded');
  assert.equal(removed.completed_at, p.completed_at);
  assert.deepEqual(removed.metrics, p.metrics);
  const listed = (await client.predictions.list()).results.find((x) => x.id === p.id);
  assert.equal(listed?.data_removed, true);
  assert.equal(listed?.output, null);
});

test('a prediction is forgotten (404) only after predictionRetentionMs', async () => {
  const sim = await startSimulator({ outputRetentionMs: 100, predictionRetentionMs: 400 });
  const client = clientFor(sim);
  const p = await client.predictions.create({ model: 'black-forest-labs/flux-schnell', input: { prompt: 'forgotten' }, wait: 10 });
  await sleep(200);
  assert.equal((await client.predictions.get(p.id)).data_removed, true);
  await sleep(500);
  assert.equal((await api(sim, `/v1/predictions/${p.id}`)).status, 404);
});

test('logs follow the run: a canceled run stops short of 100 %', async () => {
  const sim = await startSimulator();
  const client = clientFor(sim);
  const p = await client.predictions.create({ model: 'black-forest-labs/flux-dev', input: { prompt: 'cut short [sim:slow=3000]', num_inference_steps: 10 } });
  await waitForStatus(client, p.id, (x) => (parseProgressFromLogs(x)?.current ?? 0) >= 2);
  const canceled = await client.predictions.cancel(p.id);
  const progress = parseProgressFromLogs(canceled);
  assert.ok(progress !== null && progress.current >= 2 && progress.current < 10, JSON.stringify(progress));
  assert.equal((await client.predictions.get(p.id)).logs, canceled.logs, 'the logs of a final prediction no longer change');
});

describe('webhooks', () => {
  interface Received {
    headers: IncomingHttpHeaders;
    body: string;
    status: number;
  }
  let receiver: Server;
  let receiverUrl: string;
  const received: Received[] = [];
  let failNextCompleted = 0;

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = (JSON.parse(body) as Prediction).status;
        const final = ['succeeded', 'failed', 'canceled', 'aborted'].includes(status);
        const answer = final && failNextCompleted > 0 ? 500 : 200;
        if (answer === 500) failNextCompleted--;
        received.push({ headers: req.headers, body, status: answer });
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/replicate`;
  });
  after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  function verifySignature(secret: string, r: Received): boolean {
    const id = String(r.headers['webhook-id']);
    const timestamp = String(r.headers['webhook-timestamp']);
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${r.body}`).digest('base64');
    return String(r.headers['webhook-signature'])
      .split(' ')
      .some((sig) => sig === `v1,${expected}`);
  }

  test('signed webhooks for start and completed; completed is retried after a 500 with the same webhook-id', async () => {
    const secret = `whsec_${Buffer.from('kiln simulator test secret').toString('base64')}`;
    const sim = await startSimulator({ webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200] });
    assert.equal(sim.webhookSecret, secret);
    received.length = 0;
    failNextCompleted = 1;

    const client = clientFor(sim);
    const p = await client.predictions.create({
      model: 'black-forest-labs/flux-schnell',
      input: { prompt: 'hooked', seed: 5 },
      webhook: `${receiverUrl}?tag=gen-1`,
      webhook_events_filter: ['start', 'completed'],
    });
    const deadline = Date.now() + 5000;
    while (received.filter((r) => r.status === 200).length < 2 && Date.now() < deadline) await sleep(20);

    const payloads = received.map((r) => ({ ...r, prediction: JSON.parse(r.body) as Prediction }));
    assert.deepEqual(
      payloads.map((r) => [r.prediction.status, r.status]),
      [
        ['processing', 200],
        ['succeeded', 500],
        ['succeeded', 200],
      ],
    );
    for (const r of payloads) {
      assert.equal(r.prediction.id, p.id);
      assert.match(String(r.headers['webhook-id']), /^msg_/);
      assert.ok(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
      assert.ok(verifySignature(secret, r), 'HMAC signature must verify');
      assert.equal(await validateWebhook({ id: String(r.headers['webhook-id']), timestamp: String(r.headers['webhook-timestamp']), signature: String(r.headers['webhook-signature']), body: r.body, secret }), true);
    }
    const [start, firstTry, retry] = payloads;
    assert.equal(firstTry?.headers['webhook-id'], retry?.headers['webhook-id']);
    assert.notEqual(start?.headers['webhook-id'], firstTry?.headers['webhook-id']);

    const stats = sim.stats();
    assert.deepEqual(stats.createsByWebhookTag, { 'gen-1': 1 });
    assert.equal(stats.webhooksSent, 2);
    assert.equal(stats.webhooksFailed, 1);
  });

  test('a generated secret is exposed; dropWebhooks suppresses delivery', async () => {
    const sim = await startSimulator();
    assert.match(sim.webhookSecret, /^whsec_[A-Za-z0-9+/]+=*$/);
    const secretRes = await api(sim, '/v1/webhooks/default/secret');
    assert.deepEqual(await secretRes.json(), { key: sim.webhookSecret });

    received.length = 0;
    failNextCompleted = 0;
    sim.faults.set({ dropWebhooks: true });
    await clientFor(sim).predictions.create({
      model: 'black-forest-labs/flux-schnell',
      input: { prompt: 'silent' },
      webhook: receiverUrl,
      wait: 10,
    });
    await sleep(100);
    assert.equal(received.length, 0);
    assert.ok(sim.stats().webhooksDropped >= 1);
  });

  test('without webhook_events_filter only output and completed webhooks go out (Replicate\'s default)', async () => {
    const sim = await startSimulator();
    received.length = 0;
    failNextCompleted = 0;
    const p = await clientFor(sim).predictions.create({
      model: 'black-forest-labs/flux-dev',
      // Long enough for several 500 ms logs windows, had they been asked for.
      input: { prompt: 'default events [sim:slow=1200]', num_inference_steps: 12 },
      webhook: receiverUrl,
    });
    const deadline = Date.now() + 5000;
    while (received.length < 2 && Date.now() < deadline) await sleep(20);
    await sleep(100); // nothing else trails
    const statuses = received.map((r) => (JSON.parse(r.body) as Prediction).status);
    assert.deepEqual(statuses, ['succeeded', 'succeeded'], 'one output and one completed webhook, no start and no logs');
    assert.ok(received.every((r) => (JSON.parse(r.body) as Prediction).id === p.id));
  });
});

test('the README\'s example is real code: it runs unchanged and prints an output URL', async () => {
  const root = path.join(import.meta.dirname, '..');
  const readme = await readFile(path.join(root, 'jobs', 'simulator', 'README.md'), 'utf8');
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example);
  // At the repository root, where its import path resolves.
  const file = path.join(root, `.simulator-readme-example-${process.pid}.ts`);
  await writeFile(file, example);
  try {
    const run = await promisify(execFile)(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
    assert.match(run.stdout, /http:\/\/127\.0\.0\.1:\d+\/files\/[a-z0-9]{26}\/out-0\.webp/);
  } finally {
    await rm(file, { force: true });
  }
});

test('without a token option the simulator makes its own, requires it and exposes it', async () => {
  const sim = createSimulator();
  await sim.start();
  try {
    assert.match(sim.apiToken, /^r8_[A-Za-z0-9]{37}$/);
    assert.notEqual(sim.apiToken, createSimulator().apiToken, 'each simulator has its own token');
    assert.equal((await fetch(`${sim.url}/v1/predictions`)).status, 401);
    const page = await clientFor(sim).predictions.list();
    assert.deepEqual(page.results, []);
  } finally {
    await sim.stop();
  }
});

test('stop() closes the server and clears timers while predictions are in flight', async () => {
  const sim = createSimulator({ latencyMs: { min: 10_000, max: 10_000 } });
  await sim.start();
  const url = sim.url;
  const pending = fetch(`${url}/v1/models/black-forest-labs/flux-schnell/predictions`, {
    method: 'POST',
    headers: { prefer: 'wait=60', 'content-type': 'application/json', authorization: `Bearer ${sim.apiToken}` },
    body: JSON.stringify({ input: { prompt: 'never finishes' } }),
  }).catch((error: unknown) => error);
  await sleep(50);
  await sim.stop();
  await pending; // ended (with or without a body), not hanging
  await assert.rejects(fetch(`${url}/v1/predictions`));
});
