// The load generator: N concurrent clients, each POSTing one request after another over
// keep-alive connections for a warm-up and then a measured window. node:http with a keep-alive
// agent costs the least client CPU, which matters when the load generator shares 2 cores
// with the API and PostgreSQL.
import http from 'node:http';

export interface LoadOptions {
  port: number;
  path: string;
  headers: Readonly<Record<string, string>>;
  /** The body of the n-th request (so each can differ). */
  body(sequence: number): string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** A request taking longer counts as a network error. */
  requestTimeoutMs: number;
  signal: AbortSignal;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  measuredSeconds: number;
  /** 2xx responses per second in the measured window. */
  requestsPerSecond: number;
  accepted: number;
  /** Answered with a status outside 2xx. */
  non2xx: number;
  /** No answer: connection refused or reset, timeout. */
  networkErrors: number;
  /** Of every answered request in the measured window, in ms. */
  latencyMs: LatencySummary;
  /** The first failure seen, for the error message. */
  firstError: string | undefined;
  /** Every request that completed, warm-up included (to divide server-side counters by). */
  completedTotal: number;
}

export interface Response {
  status: number;
  body: string;
}

/** One POST with a JSON body; rejects only when no answer arrives. */
export function post(agent: http.Agent, port: number, path: string, headers: Readonly<Record<string, string>>, body: string, timeoutMs: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { agent, host: '127.0.0.1', port, path, method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** tRPC v11 non-batched response: `{ "result": { "data": … } }`. */
export function resultData(body: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined; // the caller reports the body as it came
  }
  if (typeof parsed === 'object' && parsed !== null && 'result' in parsed) {
    const result = parsed.result;
    if (typeof result === 'object' && result !== null && 'data' in result) return result.data;
  }
  return undefined;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency });
  const measureStart = performance.now() + options.warmupMs;
  const measureEnd = measureStart + options.durationMs;
  const latencies: number[] = [];
  const counts = { accepted: 0, non2xx: 0, networkErrors: 0, completedTotal: 0, sequence: 0 };
  let firstError: string | undefined;

  // A response counts when it arrives inside the window, whenever its request started.
  const client = async () => {
    while (!options.signal.aborted && performance.now() < measureEnd) {
      const sequence = counts.sequence++;
      const started = performance.now();
      let response: Response | undefined;
      let failure: string | undefined;
      try {
        response = await post(agent, options.port, options.path, options.headers, options.body(sequence), options.requestTimeoutMs);
      } catch (error) {
        failure = `network error: ${error instanceof Error ? error.message : String(error)}`;
      }
      const ended = performance.now();
      counts.completedTotal += 1;
      const ok = response !== undefined && response.status >= 200 && response.status < 300;
      if (!ok) firstError ??= failure ?? `HTTP ${response?.status}: ${response?.body.slice(0, 300)}`;
      if (ended < measureStart || ended > measureEnd) continue;
      if (response === undefined) {
        counts.networkErrors += 1;
        continue;
      }
      latencies.push(ended - started);
      if (ok) counts.accepted += 1;
      else counts.non2xx += 1;
    }
  };

  try {
    await Promise.all(Array.from({ length: options.concurrency }, client));
  } finally {
    agent.destroy();
  }
  const measuredSeconds = options.durationMs / 1000;
  return {
    measuredSeconds,
    requestsPerSecond: counts.accepted / measuredSeconds,
    accepted: counts.accepted,
    non2xx: counts.non2xx,
    networkErrors: counts.networkErrors,
    latencyMs: summarise(latencies),
    firstError,
    completedTotal: counts.completedTotal,
  };
}

/** Nearest-rank percentiles (no interpolation: every figure is a latency that happened). */
export function summarise(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { p50: Number.NaN, p95: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] ?? Number.NaN;
  let total = 0;
  for (const value of sorted) total += value;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN, mean: total / sorted.length };
}
