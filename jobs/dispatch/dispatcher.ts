// The dispatcher: hands queued generations to the create phase only as fast as the provider's
// create budget allows, fairly among lanes (select.ts). The queued generation row is the queue
// entry; nothing waits in pg-boss but work that is about to be sent. Each worker process runs
// one; each tick takes a transaction-level advisory lock, so exactly one ticks at a time and a
// dead one holds nothing. One tick, in one transaction:
//   1. the lanes with waiting work, each tenant's work in progress, the lanes' passes;
//   2. the create budget's slots up to `horizonMs` ahead (the GCRA rule of db/gcra.ts, so the
//      first creates of a burst fit its burst setting and later ones its steady rate);
//   3. the selection; then the budget is booked, the generations marked dispatched, and their
//      create jobs enqueued, each carrying its slot: the create phase waits for it and books
//      no other, so it never meets a booked budget and nothing is deferred and fetched again.
// It wakes on a NOTIFY of new work and ticks every `tickMs` while work waits; idle, it looks
// every `idleMs` (a lost NOTIFY, a leader that died), one indexed query.
import type { Kysely } from 'kysely';
import { laneWeight, readDispatchState, recordDispatch } from '../../db/dispatch.ts';
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts';
import { reserveMany, type BudgetRate } from '../../db/gcra.ts';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../logger.ts';
import { NOT_STARTED_BEFORE_DEADLINE } from '../phases/deadlines.ts';
import { failGeneration } from '../phases/outcomes.ts';
import type { JobQueue } from '../queue.ts';
import { selectForDispatch, type TenantLoad } from './select.ts';

export interface DispatchSettings {
  /** How far ahead create slots are booked: covers the pickup of a job, short so that a worker slot waits little. */
  horizonMs: number;
  /** Ticks while work waits. */
  tickMs: number;
  /** Looks while idle (a NOTIFY wakes it sooner). */
  idleMs: number;
  /** Dispatches per tick at most (and waiting generations read per lane). */
  maxPerTick: number;
  /** A lane's share of the budget by its tenant's tier; unknown tiers get `defaultWeight`. */
  tierWeights: Record<string, number>;
  defaultWeight: number;
  /** Generations a tenant may have dispatched or running at once, unless the tenant has its own cap. */
  inProgressCap: number;
}

export interface DispatcherOptions {
  db: Kysely<Database>;
  queue: JobQueue;
  logger: Logger;
  /** The shared create budget (db/rate-limits.ts). */
  budget: BudgetRate & { name: string };
  settings: DispatchSettings;
  /** Subscribes to the wake-up NOTIFY; answers how to unsubscribe. */
  listen?: (wake: () => void) => Promise<() => Promise<void>>;
}

export interface TickResult {
  /** Another process holds the dispatch lock. */
  leader: boolean;
  dispatched: number;
  /** Work is left waiting after this tick. */
  waiting: number;
}

export interface Dispatcher {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One tick now (tests and the loop). */
  tick(): Promise<TickResult>;
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { db, queue, settings, budget, logger } = options;
  let stopped = true;
  let wake: (() => void) | undefined;
  let woken = false;
  let loop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;

  const weightOf = (tier: string) => settings.tierWeights[tier] ?? settings.defaultWeight;

  async function tick(): Promise<TickResult> {
    return db.transaction().execute(async (trx) => {
      const state = await readDispatchState(trx, { budget: budget.name, perLane: settings.maxPerTick, maxLanes: settings.maxPerTick, defaultCap: settings.inProgressCap });
      if (!state.leader) return { leader: false, dispatched: 0, waiting: 0 };
      // Past its caller's deadline before its turn: it fails here and takes no create slot.
      for (const id of state.expired) await failGeneration(trx, id, undefined, NOT_STARTED_BEFORE_DEADLINE.code, NOT_STARTED_BEFORE_DEADLINE.message);
      const waitingRead = state.lanes.reduce((sum, lane) => sum + lane.waiting.length, 0);
      if (waitingRead === 0 || !state.budget) return { leader: true, dispatched: 0, waiting: state.expired.length };
      const { clock: budgetClock, now } = state.budget;
      const offer = reserveMany(budgetClock, budget, now, settings.horizonMs, settings.maxPerTick);
      if (offer.slots.length === 0) return { leader: true, dispatched: 0, waiting: waitingRead };
      const tenants = new Map<string, TenantLoad>(state.lanes.map((lane) => [lane.tenantId, { inProgress: lane.inProgress, cap: lane.cap }]));
      const selection = selectForDispatch(
        state.lanes.map((lane) => ({ key: lane.lane, tenantId: lane.tenantId, weight: laneWeight(weightOf(lane.tier), lane.lanesOfTenant), pass: lane.pass, waiting: lane.waiting })),
        tenants,
        state.clock,
        offer.slots.length,
      );
      const count = selection.picks.length;
      if (count === 0) return { leader: true, dispatched: 0, waiting: waitingRead };
      // Book exactly the slots used: the rest stay free for the next tick (and for retries).
      const used = reserveMany(budgetClock, budget, now, settings.horizonMs, count);
      const marked = await recordDispatch(trx, {
        budget: budget.name,
        budgetClock: used.clock,
        slots: used.slots,
        ids: selection.picks.map((pick) => pick.generationId),
        passes: selection.passes,
        clock: selection.clock,
      });
      const priorities = new Map(marked.map((row) => [row.id, row.priority]));
      const jobs = selection.picks.flatMap((pick, index) => {
        const priority = priorities.get(pick.generationId);
        return priority === undefined ? [] : [{ generationId: pick.generationId, priority, slotAt: used.slots[index]! }];
      });
      await queue.enqueueCreates(trx, jobs);
      // Lanes beyond those read, or work beyond a lane's head, count as waiting too: tick again soon.
      return { leader: true, dispatched: jobs.length, waiting: waitingRead - count };
    });
  }

  async function sleep(ms: number): Promise<void> {
    if (woken) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  }

  async function run(): Promise<void> {
    let outage = false; // a lost database is reported once, not once per tick
    while (!stopped) {
      woken = false;
      let pause = settings.idleMs;
      try {
        const result = await tick();
        outage = false;
        if (result.leader && result.waiting > 0) pause = settings.tickMs;
      } catch (error) {
        if (!outage || !isDatabaseUnavailable(error)) {
          logger.warn('dispatch tick failed; trying again', { error: error instanceof Error ? error.message : String(error) });
        }
        outage = isDatabaseUnavailable(error);
        pause = settings.idleMs;
      }
      if (!stopped) await sleep(pause);
    }
  }

  return {
    tick,
    async start() {
      stopped = false;
      unlisten = await options.listen?.(() => {
        woken = true;
        wake?.();
      });
      loop = run();
    },
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await unlisten?.();
    },
  };
}
