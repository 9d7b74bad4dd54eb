// The enqueue benchmark's report: the human table and the JSON object, with the conditions
// the figures were measured under and the targets from the issue.
import type { BenchDatabase } from './database.ts';
import { describeMachine } from './machine.ts';
import type { BatchRun, EnqueueOptions, SteadyRun } from './enqueue.ts';
import type { BenchmarkReport } from './harness.ts';
import { formatTable, integer, ms, percent, round } from './table.ts';

const TARGETS = { shareOfBaseline: 0.6, requestsPerSecond: 1000, p99Ms: 100, batchMs: 250 } as const;

export interface EnqueueResults {
  options: EnqueueOptions;
  server: BenchDatabase['server'];
  loadAverageBefore: number;
  poolSize: number;
  baseline: SteadyRun;
  kiln: SteadyRun;
  batch: BatchRun;
}

export function enqueueReport(results: EnqueueResults): BenchmarkReport {
  const { options, server, baseline, kiln, batch } = results;
  const share = kiln.requestsPerSecond / baseline.requestsPerSecond;
  const kilnErrors = kiln.non2xx + kiln.networkErrors;
  const targets = [
    { name: 'share of baseline', target: `>= ${percent(TARGETS.shareOfBaseline)}`, actual: percent(share), met: share >= TARGETS.shareOfBaseline },
    { name: 'accepted calls/s', target: `>= ${integer(TARGETS.requestsPerSecond)}`, actual: integer(kiln.requestsPerSecond), met: kiln.requestsPerSecond >= TARGETS.requestsPerSecond },
    { name: 'p99', target: `< ${TARGETS.p99Ms} ms`, actual: `${ms(kiln.latencyMs.p99)} ms`, met: kiln.latencyMs.p99 < TARGETS.p99Ms },
    { name: 'errors', target: '0', actual: String(kilnErrors), met: kilnErrors === 0 },
    { name: `slowest batch of ${integer(batch.items)}`, target: `< ${TARGETS.batchMs} ms`, actual: `${ms(batch.maxMs)} ms`, met: batch.maxMs < TARGETS.batchMs },
  ];
  const missed = targets.filter((target) => !target.met);
  const machine = describeMachine(server, results.loadAverageBefore);

  const conditions = {
    ...machine.conditions,
    machine: 'load generator, API and PostgreSQL share one machine; traffic over 127.0.0.1',
    concurrency: options.concurrency,
    warmupSeconds: options.warmupSeconds,
    durationSeconds: options.durationSeconds,
    order: 'baseline, then kiln (one server running at a time; CHECKPOINT before each)',
    kilnRole: 'api (no worker: measures acceptance only)',
    dbPoolSize: results.poolSize,
    client: 'node:http keep-alive, tRPC v11 non-batched POST /trpc/generate, prompt varies per request',
    perRequestFigures: 'over warm-up and measurement, divided by completed requests',
    batch: { items: batch.items, warmupRuns: batch.warmupRuns, runs: batch.runsMs.length, sequential: true },
  };

  const errors = (run: SteadyRun) => (run.non2xx + run.networkErrors === 0 ? '0' : `${run.non2xx} HTTP + ${run.networkErrors} net`);
  const speedRow = (label: string, run: SteadyRun) => [label, integer(run.requestsPerSecond), ms(run.latencyMs.p50), ms(run.latencyMs.p95), ms(run.latencyMs.p99), errors(run)];
  const cpuMs = (value: number | undefined) => (value === undefined ? '–' : `${value.toFixed(2)} ms`);
  const workRow = (label: string, run: SteadyRun) => [
    label,
    cpuMs(run.perRequest.apiCpuMs),
    cpuMs(run.perRequest.postgresCpuMs),
    cpuMs(run.perRequest.loadGeneratorCpuMs),
    `${(run.perRequest.walBytes / 1024).toFixed(1)} KB`,
    run.perRequest.writeTransactions.toFixed(2),
    run.machineBusy === undefined ? '–' : percent(run.machineBusy),
  ];

  const text = [
    `enqueue benchmark — ${machine.heading}, load generator + API + Postgres on one machine`,
    `concurrency ${options.concurrency}, warm-up ${options.warmupSeconds} s, measured ${options.durationSeconds} s per server, baseline first then Kiln (CHECKPOINT before each)`,
    `Kiln role=api (no worker: measures acceptance only), pg pool ${results.poolSize} each; load average before start ${results.loadAverageBefore.toFixed(2)}`,
    '',
    formatTable(['', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors'], [speedRow('baseline', baseline), speedRow('kiln', kiln), ['kiln / baseline', percent(share), '', '', '', '']]),
    '',
    formatTable(['work per request', 'API CPU', 'Postgres CPU', 'load-gen CPU', 'WAL', 'write tx', 'machine busy'], [workRow('baseline', baseline), workRow('kiln', kiln)]),
    '',
    `batch of ${integer(batch.items)}    min ${ms(batch.minMs)} ms   p50 ${ms(batch.p50Ms)} ms   max ${ms(batch.maxMs)} ms   (${batch.runsMs.length} runs after ${batch.warmupRuns} warm-up)`,
    `targets: ≥ ${percent(TARGETS.shareOfBaseline)} of baseline, ≥ ${integer(TARGETS.requestsPerSecond)} req/s, p99 < ${TARGETS.p99Ms} ms, 0 errors, batch < ${TARGETS.batchMs} ms   → ${
      missed.length === 0 ? 'met' : `NOT met: ${missed.map((target) => `${target.name} ${target.actual}`).join(', ')}`
    }`,
  ].join('\n');

  const optionalMs = (value: number | undefined) => (value === undefined ? null : round(value, 3));
  const steadyJson = (run: SteadyRun) => ({
    requestsPerSecond: round(run.requestsPerSecond, 1),
    accepted: run.accepted,
    latencyMs: { p50: round(run.latencyMs.p50), p95: round(run.latencyMs.p95), p99: round(run.latencyMs.p99), max: round(run.latencyMs.max), mean: round(run.latencyMs.mean) },
    errors: { non2xx: run.non2xx, network: run.networkErrors, first: run.firstError ?? null },
    perRequest: {
      apiCpuMs: optionalMs(run.perRequest.apiCpuMs),
      postgresCpuMs: optionalMs(run.perRequest.postgresCpuMs),
      loadGeneratorCpuMs: round(run.perRequest.loadGeneratorCpuMs, 3),
      walBytes: Math.round(run.perRequest.walBytes),
      writeTransactions: round(run.perRequest.writeTransactions, 3),
    },
    machineBusy: run.machineBusy === undefined ? null : round(run.machineBusy, 3),
  });
  const json = {
    benchmark: 'enqueue',
    conditions,
    baseline: steadyJson(baseline),
    kiln: steadyJson(kiln),
    kilnShareOfBaseline: round(share, 3),
    batch: { items: batch.items, runsMs: batch.runsMs.map((value) => round(value, 1)), minMs: round(batch.minMs, 1), p50Ms: round(batch.p50Ms, 1), maxMs: round(batch.maxMs, 1) },
    targets,
    targetsMet: missed.length === 0,
  };
  const summary = [
    { figure: 'generate calls/s (share of the bare tRPC + INSERT baseline)', value: `${integer(kiln.requestsPerSecond)} (${percent(share)})` },
    { figure: 'generate latency p50 / p99', value: `${ms(kiln.latencyMs.p50)} / ${ms(kiln.latencyMs.p99)} ms` },
    { figure: `batch of ${integer(batch.items)}, p50`, value: `${ms(batch.p50Ms)} ms` },
  ];
  return { text, json, summary };
}
