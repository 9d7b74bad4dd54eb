// The provider benchmark's report: the table for a person and the JSON object, with the
// conditions and the targets from the issue.
import type { BenchDatabase } from './database.ts';
import type { BenchmarkReport } from './harness.ts';
import { describeMachine } from './machine.ts';
import type { ProviderOptions } from './provider.ts';
import { formatTable, integer, percent, round } from './table.ts';

/** Target: sustained creation at ≥ 99 % of the limit with no 429 from the provider. */
const TARGET_CREATE_FRACTION = 0.99;

export interface ProviderSample {
  /** Since the backlog was enqueued. */
  atMs: number;
  /** The simulator's own counters (cumulative). */
  creates: number;
  reads: number;
  throttled: number;
  /** Predictions starting or processing at the provider now. */
  inFlight: number;
  /** Generations in a final state. */
  final: number;
}

export interface ProviderResults {
  options: ProviderOptions;
  server: BenchDatabase['server'];
  loadAverageBefore: number;
  samples: ProviderSample[];
  windowMarginMs: number;
  drainMs: number;
  workerRssKb: number[][];
  states: Record<string, number>;
  limiter: { name: string; granted: string; throttled: string }[];
}

export function providerReport(results: ProviderResults): BenchmarkReport {
  const { options, samples } = results;
  const last = samples.at(-1);
  const firstCreate = samples.find((sample) => sample.creates > 0);
  const allCreated = samples.find((sample) => sample.creates >= options.generations);
  // The steady window: the backlog is being created, away from the start and the end.
  const from = firstCreate ? firstCreate.atMs + results.windowMarginMs : Number.NaN;
  const to = allCreated ? allCreated.atMs - results.windowMarginMs : Number.NaN;
  const inWindow = samples.filter((sample) => sample.atMs >= from && sample.atMs <= to);
  const start = inWindow[0];
  const end = inWindow.at(-1);
  const windowSeconds = start && end ? (end.atMs - start.atMs) / 1000 : Number.NaN;
  const createRate = start && end ? (end.creates - start.creates) / windowSeconds : Number.NaN; // per second
  const createFraction = createRate / (options.createsPerMinute / 60);
  const readRate = start && end ? (end.reads - start.reads) / windowSeconds : Number.NaN;
  const readFraction = readRate / (options.readsPerMinute / 60);
  const overallReadRate = last ? last.reads / (last.atMs / 1000) : Number.NaN;
  const inFlight = inWindow.map((sample) => sample.inFlight);
  const meanInFlight = inFlight.reduce((sum, value) => sum + value, 0) / (inFlight.length || Number.NaN);
  const maxInFlight = Math.max(...samples.map((sample) => sample.inFlight));
  const throttled = last?.throttled ?? Number.NaN;
  const idealMs = (options.generations / options.createsPerMinute) * 60_000;
  const rssMaxKb = results.workerRssKb.map((series) => Math.max(...series));
  const machine = describeMachine(results.server, results.loadAverageBefore);
  const met = createFraction >= TARGET_CREATE_FRACTION && throttled === 0;

  const conditions = {
    ...machine.conditions,
    machine: 'simulator (in the bench process), API, workers and PostgreSQL share one machine; traffic over 127.0.0.1',
    provider: `simulator with ${options.createsPerMinute} creates/min and ${options.readsPerMinute} other calls/min (429 past them, Replicate's body), prediction time ${options.latencyMs.min}–${options.latencyMs.max} ms, 256 px images`,
    kiln: `1 API process, ${options.workers} worker processes (KILN_ROLE=worker), budgets ${options.createsPerMinute}/${options.readsPerMinute} per minute shared in PostgreSQL, ${options.webhooks ? 'webhooks to the API (polls as backstop)' : 'polls (no webhooks)'}`,
    generations: options.generations,
  };
  const rows = [
    ['creates / s in the steady window', `${createRate.toFixed(2)}`, `${percent(createFraction)} of ${(options.createsPerMinute / 60).toFixed(2)}`],
    ['429s from the provider', integer(throttled), 'target 0'],
    ['reads / s in the steady window', `${readRate.toFixed(2)}`, `${percent(readFraction)} of ${(options.readsPerMinute / 60).toFixed(2)}`],
    ['reads / s over the whole run', `${overallReadRate.toFixed(2)}`, `${percent(overallReadRate / (options.readsPerMinute / 60))} of the budget`],
    ['predictions in flight (window mean / max)', `${integer(meanInFlight)} / ${integer(maxInFlight)}`, ''],
    ['worker RSS, max per process', rssMaxKb.map((kb) => `${integer(kb / 1024)} MB`).join(', '), ''],
    ['drain time', `${(results.drainMs / 1000).toFixed(1)} s`, `ideal ${(idealMs / 1000).toFixed(1)} s (count ÷ rate): ${(results.drainMs / idealMs).toFixed(3)}×`],
  ];
  const text = [
    `provider benchmark — ${machine.heading}`,
    `${conditions.provider}`,
    `${conditions.kiln}; ${options.generations} generations enqueued at once; steady window ${Number.isFinite(windowSeconds) ? windowSeconds.toFixed(0) : '–'} s (from ${results.windowMarginMs / 1000} s after the first create to ${results.windowMarginMs / 1000} s before the last)`,
    '',
    formatTable(['', 'measured', ''], rows),
    '',
    `outcomes: ${Object.entries(results.states).map(([state, count]) => `${state} ${count}`).join(' · ')}; Kiln's budgets: ${results.limiter.map((row) => `${row.name} granted ${row.granted}, paused by 429 ${row.throttled}×`).join('; ')}`,
    `target: ≥ ${percent(TARGET_CREATE_FRACTION)} of the create limit with zero 429s → ${met ? 'met' : 'NOT met'}`,
  ].join('\n');

  return {
    text,
    summary: [
      { figure: 'provider creates/s (share of the limit), 429s', value: `${createRate.toFixed(2)} (${percent(createFraction)}), ${integer(throttled)}` },
      { figure: `drain of ${integer(options.generations)} generations`, value: `${(results.drainMs / 1000).toFixed(1)} s (ideal ${(idealMs / 1000).toFixed(1)} s)` },
    ],
    json: {
      benchmark: 'provider',
      conditions,
      createsPerSecond: round(createRate, 3),
      createFraction: round(createFraction, 4),
      throttled,
      readsPerSecondWindow: round(readRate, 2),
      readFractionWindow: round(readFraction, 3),
      readsPerSecondOverall: round(overallReadRate, 2),
      inFlight: { windowMean: round(meanInFlight, 1), max: maxInFlight },
      workerRssMaxKb: rssMaxKb,
      drainSeconds: round(results.drainMs / 1000, 1),
      idealSeconds: round(idealMs / 1000, 1),
      drainOverIdeal: round(results.drainMs / idealMs, 3),
      outcomes: results.states,
      targets: { createFraction: TARGET_CREATE_FRACTION, throttled: 0, met },
    },
  };
}
