// The realtime benchmark's report: the human table and the JSON object, with the conditions
// the figures were measured under and the targets from the issue.
import type { BenchDatabase } from './database.ts';
import { describeMachine } from './machine.ts';
import type { BenchmarkReport } from './harness.ts';
import type { LatencySummary } from './load.ts';
import type { ClockCheck, DeliveryRun, MemoryPoint, PickupRun, RealtimeOptions } from './realtime.ts';
import { formatTable, integer, ms, percent, round } from './table.ts';

const TARGETS = { pickupP50Ms: 5, pickupP99Ms: 25, deliveryP99Ms: 50 } as const;

const MECHANISM = 'a NOTIFY wakes the dispatcher (jobs/dispatch/dispatcher.ts), whose tick enqueues the create job; pg-boss 12 useListenNotify + queue notify: true (jobs/queue.ts) then wakes the worker\'s idle fetch loops (jobs/generation-worker.ts, 2 s backstop poll)';
const CLOCKS = 'event `at` is PostgreSQL clock_timestamp() at the event INSERT; client times are this process\'s wall clock (Date.now() refined with performance.now()); same machine, same clock';

export interface RealtimeResults {
  options: RealtimeOptions;
  server: BenchDatabase['server'];
  loadAverageBefore: number;
  clockCheck: ClockCheck;
  memory: MemoryPoint[];
  pickup: PickupRun;
  /** One per number of receivers, ascending. */
  delivery: DeliveryRun[];
}

export function realtimeReport(results: RealtimeResults): BenchmarkReport {
  const { options, server, pickup, delivery, memory, clockCheck } = results;
  const total = (pick: (run: DeliveryRun) => number) => delivery.reduce((sum, run) => sum + pick(run), 0);
  const [missing, duplicates, outOfOrder, strays] = [total((run) => run.missing), total((run) => run.duplicates), total((run) => run.outOfOrder), total((run) => run.strayDeliveries)];
  const exact = missing === 0 && duplicates === 0 && outOfOrder === 0 && strays === 0;
  const subscribers = delivery[0]?.subscribers ?? options.subscribers;
  const targets = [
    { name: 'pickup p50', target: `<= ${TARGETS.pickupP50Ms} ms`, actual: `${ms(pickup.latencyMs.p50)} ms`, met: pickup.latencyMs.p50 <= TARGETS.pickupP50Ms },
    { name: 'pickup p99', target: `<= ${TARGETS.pickupP99Ms} ms`, actual: `${ms(pickup.latencyMs.p99)} ms`, met: pickup.latencyMs.p99 <= TARGETS.pickupP99Ms },
    ...delivery.map((run) => ({
      name: `delivery p99 (${integer(run.subscribers)} connected, each event to ${integer(run.receivers)})`,
      target: `<= ${TARGETS.deliveryP99Ms} ms`,
      actual: `${ms(run.latencyMs.p99)} ms`,
      met: run.latencyMs.p99 <= TARGETS.deliveryP99Ms,
    })),
    {
      name: 'every event to every receiver once, in order; none to the others',
      target: '0 missing / duplicate / out of order / stray',
      actual: `${missing} / ${duplicates} / ${outOfOrder} / ${strays}`,
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
  const apiProcesses = options.apiProcesses === 1 ? 'API process KILN_ROLE=api' : `${options.apiProcesses} API processes KILN_ROLE=api (delivery subscribers spread over them in turn; the first serves generate, pickup and the memory figure)`;
  const roles = `${apiProcesses}, worker process KILN_ROLE=worker (built-in simulator, latency ${options.simulatorLatencyMs} ms, ${concurrency}), one bench database`;

  const conditions = {
    ...machine.conditions,
    machine: 'bench client (all subscribers), API, worker and PostgreSQL share one machine; traffic over 127.0.0.1',
    roles,
    apiProcesses: options.apiProcesses,
    workerConcurrency: options.workerConcurrency ?? 'default',
    pickupMechanism: MECHANISM,
    clocks: CLOCKS,
    clockCheck: { postgresMinusClientMs: round(clockCheck.offsetMs, 3), uncertaintyMs: round(clockCheck.uncertaintyMs, 3) },
    pickup: { requests: pickup.requests, warmup: pickup.warmup, sequential: true, gapMs: pickup.gapMs, after: `the previous generation ${pickup.after}`, request: 'POST /trpc/generate, 1 thumbnail webp variant' },
    delivery: {
      subscribers,
      receivers: delivery.map((run) => run.receivers),
      connections:
        'one createKilnClient (own WebSocket) per subscriber; receivers: onUpdate({}) = all of the tenant\'s generations; the others: onUpdate({ generationId }) of one finished generation; received in the tRPC client\'s onData',
      generationsPerSecond: options.rate,
      durationSeconds: options.durationSeconds,
      generations: delivery[0]?.generations ?? 0,
      eventsPerGeneration: round((delivery[0]?.events ?? 0) / Math.max(1, delivery[0]?.generations ?? 0), 1),
      readiness: '2 warm-up generations reached every receiver before each measured trickle',
    },
    memory: { measure: 'VmRSS of the API process, median of 5 samples 1 s apart, 2 s after the connections opened; 50 subscriptions opened and closed first', idleSubscribers: options.idle },
  };

  const latencyRow = (label: string, summary: LatencySummary) => [label, ms(summary.p50), ms(summary.p95), ms(summary.p99), ms(summary.max), ms(summary.mean)];
  const header = ['', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'mean ms'];
  const coreShare = (value: number | undefined) => (value === undefined ? '–' : percent(value / 1000));

  const text = [
    `realtime benchmark — ${machine.heading}; bench client, API, worker and Postgres on one machine`,
    roles,
    `clocks: ${CLOCKS} (PostgreSQL − client ${ms(clockCheck.offsetMs)} ± ${ms(clockCheck.uncertaintyMs)} ms); load average before start ${results.loadAverageBefore.toFixed(2)}`,
    '',
    `pickup — ${pickup.requests} sequential generate calls after ${pickup.warmup} warm-up, each ${pickup.gapMs} ms after the previous generation ${pickup.after}${pickup.after === 'finished' ? ' (an idle worker)' : ''}`,
    `mechanism: ${MECHANISM}`,
    formatTable(header, [
      latencyRow('generate returned → started', pickup.latencyMs),
      latencyRow('queued event → started (db clock)', pickup.fromQueuedEventMs),
      latencyRow('generate round trip (client)', pickup.generateRoundTripMs),
    ]),
    ...(pickup.negative > 0 ? [`(${pickup.negative} started before the client had the answer: negative values)`] : []),
    ...(pickup.pacerFallbacks > 0 ? [`(for ${pickup.pacerFallbacks} calls the pacing subscription did not see the previous generation ${pickup.after} within ${pickup.pacerWaitMs / 1000} s; the table was read instead)`] : []),
    '',
    `event delivery — ${integer(subscribers)} connected subscribers (one WebSocket each), ${options.rate} generations/s over ${options.durationSeconds} s (${conditions.delivery.eventsPerGeneration} events each); per row, "receivers" of them watch all of the tenant's generations (each event goes to every one), the others each watch one finished generation`,
    formatTable(
      ['receivers', 'deliveries', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'last receiver p99 ms', 'missing/dup/order/stray', 'API CPU', 'API µs/delivery', 'bench µs/delivery', 'machine busy'],
      delivery.map((run) => [
        integer(run.receivers),
        `${integer(run.deliveries)}/${integer(run.expectedDeliveries)}`,
        ms(run.latencyMs.p50),
        ms(run.latencyMs.p95),
        ms(run.latencyMs.p99),
        ms(run.latencyMs.max),
        ms(run.lastReceiptMs.p99),
        `${run.missing}/${run.duplicates}/${run.outOfOrder}/${run.strayDeliveries}`,
        coreShare(run.cpu.api),
        run.cpuPerDeliveryUs.api === undefined ? '–' : run.cpuPerDeliveryUs.api.toFixed(1),
        run.cpuPerDeliveryUs.bench.toFixed(1),
        run.cpu.machineBusy === undefined ? '–' : percent(run.cpu.machineBusy),
      ]),
    ),
    ...delivery.map((run) => {
      const stageOrder = Object.keys(run.p99ByStageMs).sort((a, b) => (run.stages[b] ?? 0) - (run.stages[a] ?? 0));
      return `p99 by stage, ${integer(run.receivers)} receivers: ${stageOrder.map((stage) => `${stage} ${ms(run.p99ByStageMs[stage] ?? Number.NaN)}`).join(' · ')} ms`;
    }),
    ...delivery.flatMap((run) =>
      run.resubscribed > 0 || run.subscriberErrors > 0 ? [`${integer(run.receivers)} receivers: resubscribed ${run.resubscribed}, subscriber errors ${run.subscriberErrors}${run.firstError ? ` (${run.firstError})` : ''}`] : [],
    ),
    '(CPU: share of one core over each window; µs per delivery: the whole window\'s CPU, feed reads and the worker\'s own events included, divided by the deliveries)',
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
    `targets: pickup p50 ≤ ${TARGETS.pickupP50Ms} ms, p99 ≤ ${TARGETS.pickupP99Ms} ms; delivery p99 ≤ ${TARGETS.deliveryP99Ms} ms with ${integer(subscribers)} subscribers connected; every event exactly once, in order   → ${
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
    delivery: delivery.map((run) => ({
      subscribers: run.subscribers,
      receivers: run.receivers,
      latencyMs: latencyJson(run.latencyMs),
      firstReceiptMs: latencyJson(run.firstReceiptMs),
      lastReceiptMs: latencyJson(run.lastReceiptMs),
      p99ByStageMs: Object.fromEntries(Object.entries(run.p99ByStageMs).map(([stage, value]) => [stage, round(value, 2)])),
      stages: run.stages,
      events: run.events,
      expectedDeliveries: run.expectedDeliveries,
      deliveries: run.deliveries,
      missing: run.missing,
      duplicates: run.duplicates,
      outOfOrder: run.outOfOrder,
      strayDeliveries: run.strayDeliveries,
      resubscribed: run.resubscribed,
      subscriberErrors: run.subscriberErrors,
      firstError: run.firstError ?? null,
      windowSeconds: round(run.windowSeconds, 2),
      cpuMsPerSecond: { api: optional(run.cpu.api), worker: optional(run.cpu.worker), postgres: optional(run.cpu.postgres), bench: round(run.cpu.bench, 1) },
      machineBusy: run.cpu.machineBusy === undefined ? null : round(run.cpu.machineBusy, 3),
      cpuPerDeliveryUs: { api: run.cpuPerDeliveryUs.api === undefined ? null : round(run.cpuPerDeliveryUs.api, 1), bench: round(run.cpuPerDeliveryUs.bench, 1) },
    })),
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
  const summary = [
    { figure: 'pickup on an idle system, p50 / p99', value: `${ms(pickup.latencyMs.p50)} / ${ms(pickup.latencyMs.p99)} ms` },
    ...delivery.map((run) => ({ figure: `event delivery p99, ${integer(run.receivers)} of ${integer(run.subscribers)} subscribers receiving`, value: `${ms(run.latencyMs.p99)} ms` })),
  ];
  return { text, json, summary };
}
