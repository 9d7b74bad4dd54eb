// Helpers for tests that talk to the Replicate-compatible simulator over real HTTP: the official
// `replicate` client where it applies, plain fetch where a test checks raw statuses and headers.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import Replicate, { type Prediction } from 'replicate';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../jobs/simulator/index.ts';

export const TEST_TOKEN = 'r8_test_token';

/** Simulators started through startSimulator; stop them all with stopSimulators() in an after hook. */
const started = new Set<Simulator>();

/** A started simulator with fast timings and small images; options override the defaults. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = createSimulator({
    apiToken: TEST_TOKEN,
    latencyMs: { min: 50, max: 150 },
    queueDelayMs: 20,
    imageSize: 256,
    ...options,
  });
  await sim.start();
  started.add(sim);
  return sim;
}

export async function stopSimulators(): Promise<void> {
  await Promise.all([...started].map((sim) => sim.stop()));
  started.clear();
}

export function clientFor(sim: Simulator): Replicate {
  return new Replicate({ auth: sim.apiToken, baseUrl: `${sim.url}/v1`, useFileOutput: false });
}

/** fetch against the simulator with its token; `json` becomes the request body. */
export function api(sim: Simulator, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, headers, ...rest } = init;
  return fetch(`${sim.url}${path}`, {
    ...rest,
    // A connection of its own each time: a simulator started again on its folder listens on the
    // port it had, where a kept-alive socket to the stopped one would meet a closed connection.
    headers: { authorization: `Bearer ${sim.apiToken}`, 'content-type': 'application/json', connection: 'close', ...headers },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });
}

export const FLUX_SCHNELL_PREDICTIONS = '/v1/models/black-forest-labs/flux-schnell/predictions';

/** POST a flux-schnell create with plain fetch; asserts the 201. */
export async function createRaw(sim: Simulator, input: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Prediction> {
  const res = await api(sim, FLUX_SCHNELL_PREDICTIONS, { method: 'POST', json: { input }, headers });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()) as Prediction;
}

export async function waitForStatus(client: Replicate, id: string, done: (p: Prediction) => boolean, timeoutMs = 5000): Promise<Prediction> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const prediction = await client.predictions.get(id);
    if (done(prediction)) return prediction;
    if (Date.now() > deadline) throw new Error(`prediction ${id} still ${prediction.status}`);
    await sleep(20);
  }
}

export const isFinal = (p: Prediction): boolean => ['succeeded', 'failed', 'canceled', 'aborted'].includes(p.status);

export function outputUrls(prediction: Prediction): string[] {
  const output: unknown = prediction.output;
  assert.ok(Array.isArray(output), `expected an array output, got ${JSON.stringify(output)}`);
  return output.map((u) => String(u));
}

export async function download(url: string): Promise<{ bytes: Buffer; contentType: string | null; contentLength: string | null }> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return { bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type'), contentLength: res.headers.get('content-length') };
}

/** Environment for a Kiln app that talks to a standalone simulator (one that outlives the app). */
export function standaloneProviderEnv(sim: Simulator): Record<string, string> {
  return { REPLICATE_BASE_URL: `${sim.url}/v1`, REPLICATE_API_TOKEN: sim.apiToken };
}
