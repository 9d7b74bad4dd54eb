import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { priorityHeadStartSeconds, selectForDispatch, type WaitingLane } from './select.ts';

const lane = (key: string, count: number, weight = 1, pass: number | null = null): WaitingLane => ({
  key,
  tenantId: key,
  weight,
  pass,
  waiting: Array.from({ length: count }, (_, index) => `${key}-${index}`),
});
const noCaps = new Map<string, { inProgress: number; cap: number }>();

/** Runs `ticks` ticks of `slots` each, carrying passes and clock over as the database would. */
function run(lanes: WaitingLane[], ticks: number, slots: number, caps = noCaps) {
  let clock = 0;
  const passes = new Map<string, number>();
  const taken = new Map<string, number>();
  const order: string[] = [];
  for (let tick = 0; tick < ticks; tick += 1) {
    const current = lanes.map((l) => ({ ...l, pass: passes.get(l.key) ?? null, waiting: l.waiting.slice(taken.get(l.key) ?? 0) }));
    const selection = selectForDispatch(current, caps, clock, slots);
    clock = selection.clock;
    for (const [key, pass] of selection.passes) passes.set(key, pass);
    for (const pick of selection.picks) {
      taken.set(pick.lane, (taken.get(pick.lane) ?? 0) + 1);
      order.push(pick.generationId);
    }
  }
  return { order, taken, clock };
}

describe('selectForDispatch', () => {
  it('keeps the order within a lane', () => {
    const { order } = run([lane('a', 10)], 3, 4);
    assert.deepEqual(order, Array.from({ length: 10 }, (_, index) => `a-${index}`));
  });

  it('serves a newcomer behind a long backlog at its next turn, not after the backlog', () => {
    const lanes = [lane('a', 5000)];
    let { order, clock } = run(lanes, 10, 10); // a has had 100 dispatches
    assert.equal(order.length, 100);
    // b arrives with 10: it alternates with a from the next slot on.
    const selection = selectForDispatch([{ ...lane('a', 4900), pass: clock + 1 }, lane('b', 10)], noCaps, clock, 20);
    order = selection.picks.map((pick) => pick.generationId);
    assert.equal(order[0], 'b-0', 'b starts at once (a idle lane starts at the clock)');
    assert.equal(order.filter((id) => id.startsWith('b')).length, 10);
    assert.deepEqual(order.slice(0, 4), ['b-0', 'a-0', 'b-1', 'a-1']);
  });

  it('shares slots in proportion to weight', () => {
    const { taken } = run([lane('free', 10_000, 1), lane('standard', 10_000, 2), lane('pro', 10_000, 4)], 70, 10);
    assert.equal(taken.get('free'), 100);
    assert.equal(taken.get('standard'), 200);
    assert.equal(taken.get('pro'), 400);
  });

  it('shares equally among equal lanes, whatever the slots per tick', () => {
    const { taken } = run([lane('a', 1000), lane('b', 1000), lane('c', 1000)], 33, 7);
    const counts = ['a', 'b', 'c'].map((key) => taken.get(key) ?? 0);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, String(counts));
  });

  it('banks no credit for a lane that was idle', () => {
    // b was served long ago (low pass); it must not take a run of slots now.
    const selection = selectForDispatch([{ ...lane('a', 100), pass: 50 }, { ...lane('b', 100), pass: 1 }], noCaps, 50, 6);
    const b = selection.picks.filter((pick) => pick.lane === 'b').length;
    assert.equal(b, 3);
  });

  it('skips a tenant at its cap on work in progress and gives its slots to others', () => {
    const caps = new Map([['a', { inProgress: 98, cap: 100 }]]);
    const selection = selectForDispatch([lane('a', 100), lane('b', 100)], caps, 0, 10);
    assert.equal(selection.picks.filter((pick) => pick.lane === 'a').length, 2);
    assert.equal(selection.picks.length, 10);
  });

  it('hands out no more than the slots, nor more than is waiting', () => {
    assert.equal(selectForDispatch([lane('a', 3)], noCaps, 0, 10).picks.length, 3);
    assert.equal(selectForDispatch([lane('a', 30)], noCaps, 0, 10).picks.length, 10);
    assert.equal(selectForDispatch([], noCaps, 0, 10).picks.length, 0);
  });
});

describe('priorityHeadStartSeconds', () => {
  // A lane goes oldest first by the time each generation counts as queued: its own, earlier by its head start.
  const countsFrom = (priority: number, queuedAtMs: number) => queuedAtMs - priorityHeadStartSeconds(priority, 30) * 1000;
  it('puts higher priority first, until lower priority has waited its worth', () => {
    const now = 1_000_000;
    const high = countsFrom(2, now);
    assert.ok(high < countsFrom(0, now), 'same age: higher priority first');
    assert.ok(high < countsFrom(0, now - 59_000), 'not yet aged past it');
    assert.ok(countsFrom(0, now - 61_000) < high, 'waited 2 × 30 s longer: goes first');
    assert.ok(countsFrom(0, now - 1) < countsFrom(0, now), 'equal priority: oldest first');
  });
});
