// The realtime benchmark's report: the human table and the JSON object, with the conditions
// the figures were measured under and the targets from the issue.
import type { BenchDatabase } from './database.ts';
import { describeMachine } from './machine.ts';
import type { BenchmarkReport } from './harness.ts';
import type { LatencySummary } from './load.ts';
import type { ClockCheck, DeliveryRun, MemoryPoint, PickupRun, RealtimeOptions } from './realtime.ts';
import { formatTable, integer, ms, percent, round } from './table.ts';

const TARGETS = { pickupP50Ms: 5, pickupP99Ms: 25, deliveryP99Ms: 50 } as const;

const MECHANISM = 'pg-boss 12 useListenNotify + queue notify: true (jobs/queue.ts); the NOTIFY wakes the worker\'s idle pg-boss fetch loops (jobs/generation-worker.ts, 2 s backstop poll)';
const CLOCKS = 'event `at` is PostgreSQL clock_timestamp() at the event INSERT; client times are this process\'s wall clock (Date.now() refined with performance.now()); same machine, same clock';

export interface RealtimeResults {
  options: RealtimeOptions;
  server: BenchDatabase['server'];
  loadAverageBefore: number;
  clockCheck: ClockCheck;
  memory: MemoryPoint[];
  pickup: PickupRun;
  delivery: DeliveryRun;
}

export function realtimeReport(results: RealtimeResults): BenchmarkReport {
  const { options, server, pickup, delivery, memory, clockCheck } = results;
  const exact = delivery.missing === 0 && delivery.duplicates === 0 && delivery.outOfOrder === 0;
  const targets = [
    { name: 'pickup p50', target: `<= ${TARGETS.pickupP50Ms} ms`, actual: `${ms(pickup.latencyMs.p50)} ms`, met: pickup.latencyMs.p50 <= TARGETS.pickupP50Ms },
    { name: 'pickup p99', target: `<= ${TARGETS.pickupP99Ms} ms`, actual: `${ms(pickup.latencyMs.p99)} ms`, met: pickup.latencyMs.p99 <= TARGETS.pickupP99Ms },
    {
      name: `delivery p99 (${integer(delivery.subscribers)} subscribers)`,
      target: `<= ${TARGETS.deliveryP99Ms} ms`,
      actual: `${ms(delivery.latencyMs.p99)} ms`,
      met: delivery.latencyMs.p99 <= TARGETS.deliveryP99Ms,
    },
    {
      name: 'every event to every subscriber once, in order',
      target: '0 missing / duplicate / out of order',
      actual: `${delivery.missing} / ${delivery.duplicates} / ${delivery.outOfOrder}`,
      met: exact,
    },
  ];
  const missed = targets.filter((target) => !target.met);
  const machine = describeMachine(server, results.loadAverageBefore);
  const baseline = memory[0];
  const perSubscriberKb = memory.slice(1).map((point) => ({
    subscribers: point.subscribers,
    rssKb: point.rssKb,
    kbPerSubscriber: baseline ? (point.rssKb - baseline.rssKb) / point.subscribers : Number.NaN,
  }));
  const concurrency = options.workerConcurrency === undefined ? 'default concurrency' : `KILN_WORKER_CONCURRENCY=${options.workerConcurrency}`;
  const roles = `API process KILN_ROLE=api, worker process KILN_ROLE=worker (built-in simulator, latency ${options.simulatorLatencyMs} ms, ${concurrency}), one bench database`;

  const conditions = {
    ...machine.conditions,
    machine: 'bench client (all subscribers), API, worker and PostgreSQL share one machine; traffic over 127.0.0.1',
    roles,
    workerConcurrency: options.workerConcurrency ?? 'default',
    pickupMechanism: MECHANISM,
    clocks: CLOCKS,
    clockCheck: { postgresMinusClientMs: round(clockCheck.offsetMs, 3), uncertaintyMs: round(clockCheck.uncertaintyMs, 3) },
    pickup: { requests: pickup.requests, warmup: pickup.warmup, sequential: true, gapAfterStartMs: pickup.gapMs, request: 'POST /trpc/generate, 1 thumbnail webp variant' },
    delivery: {
      subscribers: delivery.subscribers,
      connections: 'one createKilnClient (own WebSocket) per subscriber, onUpdate({}) = all of the tenant\'s generations, received in the tRPC client\'s onData',
      generationsPerSecond: delivery.rate,
      durationSeconds: delivery.durationSeconds,
      generations: delivery.generations,
      eventsPerGeneration: round(delivery.events / Math.max(1, delivery.generations), 1),
      readiness: '2 warm-up generations reached every subscriber before the measured trickle',
    },
    memory: { measure: 'VmRSS of the API process, median of 5 samples 1 s apart, 2 s after the connections opened; 50 subscriptions opened and closed first', idleSubscribers: options.idle },
  };

  const latencyRow = (label: string, summary: LatencySummary) => [label, ms(summary.p50), ms(summary.p95), ms(summary.p99), ms(summary.max), ms(summary.mean)];
  const header = ['', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'mean ms'];
  const coreShare = (value: number | undefined) => (value === undefined ? '–' : percent(value / 1000));
  const stageOrder = Object.keys(delivery.p99ByStageMs).sort((a, b) => (delivery.stages[b] ?? 0) - (delivery.stages[a] ?? 0));

  const text = [
    `realtime benchmark — ${machine.heading}; bench client, API, worker and Postgres on one machine`,
    roles,
    `clocks: ${CLOCKS} (PostgreSQL − client ${ms(clockCheck.offsetMs)} ± ${ms(clockCheck.uncertaintyMs)} ms); load average before start ${results.loadAverageBefore.toFixed(2)}`,
    '',
    `pickup — ${pickup.requests} sequential generate calls after ${pickup.warmup} warm-up, each ${pickup.gapMs} ms after the previous one started`,
    `mechanism: ${MECHANISM}`,
    formatTable(header, [
      latencyRow('generate returned → started', pickup.latencyMs),
      latencyRow('queued event → started (db clock)', pickup.fromQueuedEventMs),
      latencyRow('generate round trip (client)', pickup.generateRoundTripMs),
    ]),
    ...(pickup.negative > 0 ? [`(${pickup.negative} started before the client had the answer: negative values)`] : []),
    ...(pickup.pacerFallbacks > 0 ? [`(the pacing subscription missed ${pickup.pacerFallbacks} started events; found in the table instead)`] : []),
    '',
    `event delivery — ${integer(delivery.subscribers)} subscribers (one WebSocket each, all of the tenant's generations), ${delivery.generations} generations at ${delivery.rate}/s over ${delivery.durationSeconds} s, ${delivery.events} events`,
    formatTable(header, [
      latencyRow('event at → each delivery', delivery.latencyMs),
      latencyRow('event at → first subscriber', delivery.firstReceiptMs),
      latencyRow('event at → last subscriber', delivery.lastReceiptMs),
    ]),
    `p99 by stage: ${stageOrder.map((stage) => `${stage} ${ms(delivery.p99ByStageMs[stage] ?? Number.NaN)}`).join(' · ')} ms`,
    `deliveries ${integer(delivery.deliveries)} of ${integer(delivery.expectedDeliveries)}: missing ${delivery.missing}, duplicates ${delivery.duplicates}, out of order ${delivery.outOfOrder}, resubscribed ${delivery.resubscribed}, subscriber errors ${delivery.subscriberErrors}${delivery.firstError ? ` (${delivery.firstError})` : ''}`,
    `CPU over the ${delivery.windowSeconds.toFixed(1)} s window (share of one core): API ${coreShare(delivery.cpu.api)} · worker ${coreShare(delivery.cpu.worker)} · Postgres ${coreShare(delivery.cpu.postgres)} · bench client ${coreShare(delivery.cpu.bench)} · machine busy ${delivery.cpu.machineBusy === undefined ? '–' : percent(delivery.cpu.machineBusy)}`,
    `CPU per delivery: API ${delivery.cpuPerDeliveryUs.api === undefined ? '–' : delivery.cpuPerDeliveryUs.api.toFixed(1)} µs · bench client ${delivery.cpuPerDeliveryUs.bench.toFixed(1)} µs`,
    '',
    'API memory per idle subscriber (VmRSS of the API process, median of 5 samples 1 s apart)',
    formatTable(
      ['idle subscribers', 'RSS MB', 'KB per subscriber', 'KB per added subscriber'],
      memory.map((point, index) => {
        const previous = memory[index - 1];
        return [
          integer(point.subscribers),
          (point.rssKb / 1024).toFixed(1),
          point.subscribers === 0 || !baseline ? '' : ((point.rssKb - baseline.rssKb) / point.subscribers).toFixed(1),
          previous && index > 1 ? ((point.rssKb - previous.rssKb) / (point.subscribers - previous.subscribers)).toFixed(1) : '',
        ];
      }),
    ),
    '',
    `targets: pickup p50 ≤ ${TARGETS.pickupP50Ms} ms, p99 ≤ ${TARGETS.pickupP99Ms} ms; delivery p99 ≤ ${TARGETS.deliveryP99Ms} ms with ${integer(delivery.subscribers)} subscribers; every event exactly once, in order   → ${
      missed.length === 0 ? 'met' : `NOT met: ${missed.map((target) => `${target.name} ${target.actual}`).join(', ')}`
    }`,
  ].join('\n');

  const latencyJson = (summary: LatencySummary) => ({ p50: round(summary.p50, 3), p95: round(summary.p95, 3), p99: round(summary.p99, 3), max: round(summary.max, 3), mean: round(summary.mean, 3) });
  const optional = (value: number | undefined) => (value === undefined ? null : round(value, 1));
  const json = {
    benchmark: 'realtime',
    conditions,
    pickup: {
      latencyMs: latencyJson(pickup.latencyMs),
      fromQueuedEventMs: latencyJson(pickup.fromQueuedEventMs),
      generateRoundTripMs: latencyJson(pickup.generateRoundTripMs),
      negative: pickup.negative,
      pacerFallbacks: pickup.pacerFallbacks,
    },
    delivery: {
      latencyMs: latencyJson(delivery.latencyMs),
      firstReceiptMs: latencyJson(delivery.firstReceiptMs),
      lastReceiptMs: latencyJson(delivery.lastReceiptMs),
      p99ByStageMs: Object.fromEntries(Object.entries(delivery.p99ByStageMs).map(([stage, value]) => [stage, round(value, 2)])),
      stages: delivery.stages,
      events: delivery.events,
      expectedDeliveries: delivery.expectedDeliveries,
      deliveries: delivery.deliveries,
      missing: delivery.missing,
      duplicates: delivery.duplicates,
      outOfOrder: delivery.outOfOrder,
      resubscribed: delivery.resubscribed,
      subscriberErrors: delivery.subscriberErrors,
      firstError: delivery.firstError ?? null,
      windowSeconds: round(delivery.windowSeconds, 2),
      cpuMsPerSecond: {
        api: optional(delivery.cpu.api),
        worker: optional(delivery.cpu.worker),
        postgres: optional(delivery.cpu.postgres),
        bench: round(delivery.cpu.bench, 1),
      },
      machineBusy: delivery.cpu.machineBusy === undefined ? null : round(delivery.cpu.machineBusy, 3),
      cpuPerDeliveryUs: { api: delivery.cpuPerDeliveryUs.api === undefined ? null : round(delivery.cpuPerDeliveryUs.api, 1), bench: round(delivery.cpuPerDeliveryUs.bench, 1) },
    },
    memory: {
      points: memory.map((point) => ({ subscribers: point.subscribers, rssKb: point.rssKb, samplesKb: point.samplesKb })),
      perSubscriberKb: perSubscriberKb.map((point) => ({ subscribers: point.subscribers, kb: round(point.kbPerSubscriber, 2) })),
      /** Between consecutive counts: less disturbed by what the first connections warm up. */
      perAddedSubscriberKb: memory.slice(2).map((point, index) => {
        const previous = memory[index + 1]!;
        return { from: previous.subscribers, to: point.subscribers, kb: round((point.rssKb - previous.rssKb) / (point.subscribers - previous.subscribers), 2) };
      }),
    },
    targets,
    targetsMet: missed.length === 0,
  };
  return { text, json };
}
