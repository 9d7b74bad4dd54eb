// The dispatch decision, in one place: which waiting generations get the create slots of this
// tick. Pure: the dispatcher (dispatcher.ts) reads lanes and slots from the database
// (db/dispatch.ts), asks `selectForDispatch`, and writes the answer back in the same transaction.
//
// Fairness is weighted fair queueing by virtual time (stride scheduling), which gives the same
// shares as deficit round-robin with a quantum proportional to the weight, one generation at a
// time and without rounding: every lane has a `pass` (its next turn in virtual time); the lane
// with the lowest pass gets the next slot and its pass moves on by 1 / weight. So over any
// stretch where lanes stay backlogged, each gets slots in proportion to its weight, and a lane
// that just got work (a tenant's first 10 behind another's 5,000) is at the front at once: a
// lane that was idle starts at the shared clock (the virtual time of the latest dispatch), so
// idling banks no credit and a newcomer waits at most one turn of each busy lane.
//
// A lane is a tenant today; the key is opaque here, so (tenant, subject) lanes need no change.
// A tenant's cap on work in progress is checked across all of its lanes.
//
// Within a lane the database hands the waiting work over already in dispatch order (see
// `priorityHeadStartSeconds`): higher priority first, each priority point worth `agingSeconds` of waiting,
// then oldest first.

export interface WaitingLane {
  /** Opaque and stable: "t:<tenant id>" now, with a subject part later. */
  key: string;
  tenantId: string;
  weight: number;
  /** Null: the lane has no turn on record (new, or idle long enough to be forgotten). */
  pass: number | null;
  /** Its waiting generations in dispatch order (at most as many as a tick can hand out). */
  waiting: readonly string[];
}

export interface TenantLoad {
  /** Dispatched or running now. */
  inProgress: number;
  cap: number;
}

export interface DispatchSelection {
  picks: { lane: string; generationId: string }[];
  /** The new pass of every lane that got a slot. */
  passes: Map<string, number>;
  clock: number;
}

export function selectForDispatch(
  lanes: readonly WaitingLane[],
  tenants: ReadonlyMap<string, TenantLoad>,
  clock: number,
  slots: number,
): DispatchSelection {
  const state = lanes
    .filter((lane) => lane.waiting.length > 0 && lane.weight > 0)
    .map((lane) => ({ lane, pass: Math.max(lane.pass ?? clock, clock), next: 0 }));
  const load = new Map([...tenants].map(([id, value]) => [id, { ...value }]));
  const picks: DispatchSelection['picks'] = [];
  const passes = new Map<string, number>();
  let now = clock;
  while (picks.length < slots) {
    let best: (typeof state)[number] | undefined;
    for (const candidate of state) {
      if (candidate.next >= candidate.lane.waiting.length) continue;
      const tenant = load.get(candidate.lane.tenantId);
      if (tenant && tenant.inProgress >= tenant.cap) continue;
      // Lowest pass first; a tie goes to the lane with the key first in order (stable, arbitrary).
      if (!best || candidate.pass < best.pass || (candidate.pass === best.pass && candidate.lane.key < best.lane.key)) best = candidate;
    }
    if (!best) break;
    picks.push({ lane: best.lane.key, generationId: best.lane.waiting[best.next]! });
    best.next += 1;
    now = Math.max(now, best.pass);
    best.pass += 1 / best.lane.weight;
    passes.set(best.lane.key, best.pass);
    const tenant = load.get(best.lane.tenantId);
    if (tenant) tenant.inProgress += 1;
  }
  return { picks, passes, clock: now };
}

/**
 * The order within a lane: a generation counts as queued this many seconds before it was —
 * `agingSeconds` per priority point — and a lane goes oldest first by that time. That is
 * ordering by "priority + seconds waited / agingSeconds", highest first: higher priority goes
 * first, but a generation that has waited `agingSeconds` longer than one a priority point above
 * it goes before it, so nothing starves. Fixed when it is queued (db stores the time it counts
 * from as `dispatch_order`, so the order is an index), it never changes while it waits.
 */
export function priorityHeadStartSeconds(priority: number, agingSeconds: number): number {
  return priority * agingSeconds;
}
