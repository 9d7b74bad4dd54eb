// The GCRA budget's arithmetic: spacing, bursts and pauses, in plain numbers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admit, nextSlot, pause, reserve, reserveMany, type BudgetClock, type BudgetRate } from './gcra.ts';

const perSecond: BudgetRate = { perMinute: 60, burst: 3 }; // one call a second, three at once after a quiet spell
const fresh: BudgetClock = { tat: 0, pausedUntil: 0 };
const now = 1_000_000;

/** `count` calls asked for at `at`, each reserving in turn. */
function calls(count: number, clock: BudgetClock, at: number, maxWaitMs = Infinity) {
  const outcomes = [];
  for (let index = 0; index < count; index += 1) {
    const result = reserve(clock, perSecond, at, maxWaitMs);
    outcomes.push(result.reservation);
    clock = result.clock;
  }
  return { outcomes, clock };
}

describe('GCRA budgets', () => {
  it('let a burst go at once after a quiet spell, then space calls at the steady rate', () => {
    const { outcomes } = calls(6, fresh, now);
    assert.deepEqual(
      outcomes.map((outcome) => (outcome.granted ? outcome.waitMs : -1)),
      [0, 0, 0, 1000, 2000, 3000],
    );
  });

  it('refuse a call whose slot is further away than the caller would wait, and book nothing for it', () => {
    const { outcomes, clock } = calls(5, fresh, now, 1500);
    assert.deepEqual(outcomes.slice(3), [{ granted: true, waitMs: 1000 }, { granted: false, retryInMs: 500 }]);
    assert.equal(nextSlot(clock, perSecond, now), now + 2000, 'the refused call took no slot');
  });

  it('never exceed the rate over any window, whatever the arrival pattern', () => {
    let clock = fresh;
    const slots: number[] = [];
    for (let at = now; at < now + 60_000; at += 137) {
      const result = reserve(clock, perSecond, at, 5_000);
      clock = result.clock;
      if (result.reservation.granted) slots.push(at + result.reservation.waitMs);
    }
    for (let index = 0; index + 3 < slots.length; index += 1) {
      // Any four calls span at least one interval beyond the burst: at most burst + t/interval calls in t.
      assert.ok(slots[index + 3]! - slots[index]! >= 1000 - 1e-9, `calls ${index}..${index + 3} too close`);
    }
    const inFirstMinute = slots.filter((slot) => slot < now + 60_000).length;
    assert.ok(inFirstMinute <= 3 + 60, `${inFirstMinute} calls in a minute`);
    assert.ok(inFirstMinute >= 60, `only ${inFirstMinute} calls in a minute of steady demand`);
  });

  it('save up no more than one burst, however long the quiet spell', () => {
    const busy = calls(3, fresh, now).clock;
    const { outcomes } = calls(4, busy, now + 3_600_000);
    assert.deepEqual(outcomes.map((outcome) => (outcome.granted ? outcome.waitMs : -1)), [0, 0, 0, 1000]);
  });

  it('after a 429 let nobody call until the pause ends, and then resume at the steady rate with no burst', () => {
    const paused = pause(fresh, perSecond, now, 30_000);
    assert.equal(nextSlot(paused, perSecond, now), now + 30_000);
    const { outcomes } = calls(2, paused, now);
    assert.deepEqual(outcomes, [{ granted: true, waitMs: 30_000 }, { granted: true, waitMs: 31_000 }]);
  });
});

describe('reserveMany (the dispatcher books a stretch ahead)', () => {
  it('hands out the burst at once, then the steady spacing, up to the horizon', () => {
    const { slots } = reserveMany(fresh, perSecond, now, 2_500, 100);
    // Three back to back after a quiet spell, then one a second: at +1 s and +2 s within 2.5 s.
    assert.deepEqual(slots.map((slot) => slot - now), [0, 0, 0, 1000, 2000]);
  });

  it('stops at max, and leaves the clock where the same calls one by one would', () => {
    const many = reserveMany(fresh, perSecond, now, 10_000, 4);
    assert.equal(many.slots.length, 4);
    let clock = fresh;
    for (let index = 0; index < 4; index += 1) clock = reserve(clock, perSecond, now, 10_000).clock;
    assert.deepEqual(many.clock, clock);
  });

  it('books nothing while the budget is paused past the horizon', () => {
    const paused = pause(fresh, perSecond, now, 5_000);
    assert.deepEqual(reserveMany(paused, perSecond, now, 1_000, 10).slots, []);
  });
});

describe('admit: a request budget admits a whole batch or none', () => {
  const rate = { perMinute: 60, burst: 10 }; // one a second, ten back to back
  it('admits a burst after a quiet spell, then one per interval', () => {
    let tat = 0;
    const now = 100_000;
    for (let request = 0; request < 10; request += 1) {
      const step = admit({ tat }, rate, now, 1);
      assert.deepEqual(step.admission, { admitted: true }, `request ${request}`);
      tat = step.tat;
    }
    const refused = admit({ tat }, rate, now, 1);
    assert.deepEqual(refused.admission, { admitted: false, retryInMs: 1000 });
    assert.equal(refused.tat, tat, 'a refusal changes nothing');
    assert.deepEqual(admit({ tat }, rate, now + 1000, 1).admission, { admitted: true });
  });

  it('counts a batch as its items, all or nothing', () => {
    const half = admit({ tat: 0 }, rate, 100_000, 6);
    assert.deepEqual(half.admission, { admitted: true });
    const tooMany = admit({ tat: half.tat }, rate, 100_000, 5);
    assert.deepEqual(tooMany.admission, { admitted: false, retryInMs: 1000 }, 'one more interval frees the fifth');
    assert.deepEqual(admit({ tat: half.tat }, rate, 100_000, 4).admission, { admitted: true });
  });

  it('never admits more than a burst at once', () => {
    assert.deepEqual(admit({ tat: 0 }, rate, 100_000, 11).admission, { admitted: false, retryInMs: Number.POSITIVE_INFINITY });
  });
});
