// The deadline rule's arithmetic.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cancelAfterSeconds, capAtDeadline, isPastDeadline, msUntilDeadline } from './deadlines.ts';

const now = Date.UTC(2026, 0, 1);
const due = (inMs: number) => ({ deadline_at: new Date(now + inMs) });

describe('deadlines', () => {
  it('count down to the deadline and are past at it', () => {
    assert.equal(msUntilDeadline(due(1500), now), 1500);
    assert.equal(isPastDeadline(due(1), now), false);
    assert.equal(isPastDeadline(due(0), now), true);
    assert.equal(isPastDeadline(due(-10), now), true);
  });

  it('never let a wait outlast the deadline', () => {
    assert.equal(capAtDeadline(10_000, due(3_000), now), 3_000);
    assert.equal(capAtDeadline(1_000, due(3_000), now), 1_000);
    assert.equal(capAtDeadline(1_000, due(-5_000), now), 0);
  });

  it('tell the provider the whole seconds left, but never less than it accepts', () => {
    assert.equal(cancelAfterSeconds(due(600_000), 5, now), 600);
    assert.equal(cancelAfterSeconds(due(90_500), 5, now), 91);
    assert.equal(cancelAfterSeconds(due(2_000), 5, now), 5);
  });
});
