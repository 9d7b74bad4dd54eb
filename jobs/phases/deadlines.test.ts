// The deadline rules' arithmetic: the caller's deadline, and the prediction's run limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cancelAfterSeconds, capAtNearestLimit, isPastDeadline, missedLimit, msUntilNearestLimit, predictionDeadline } from './deadlines.ts';

const now = Date.UTC(2026, 0, 1);
const at = (inMs: number) => new Date(now + inMs);
const limits = (deadlineInMs: number | null, runLimitInMs: number | null) => ({
  deadline_at: deadlineInMs === null ? null : at(deadlineInMs),
  prediction_deadline_at: runLimitInMs === null ? null : at(runLimitInMs),
});

describe('deadlines', () => {
  it('never pass for a generation that asked for none, however long it waits', () => {
    assert.equal(isPastDeadline(limits(null, null), now + 365 * 86_400_000), false);
    assert.equal(missedLimit(limits(null, null), now + 365 * 86_400_000), undefined);
    assert.equal(msUntilNearestLimit(limits(null, null), now), Infinity);
    assert.equal(capAtNearestLimit(60_000, limits(null, null), now), 60_000);
  });

  it('pass at the caller\'s deadline, which comes before the run limit when both have passed', () => {
    assert.equal(isPastDeadline(limits(1, null), now), false);
    assert.equal(isPastDeadline(limits(0, null), now), true);
    assert.equal(missedLimit(limits(-10, -20), now), 'deadline');
    assert.equal(missedLimit(limits(5_000, -20), now), 'run-limit');
    assert.equal(missedLimit(limits(null, 0), now), 'run-limit');
  });

  it('never let a wait outlast the nearer limit', () => {
    assert.equal(capAtNearestLimit(10_000, limits(3_000, 8_000), now), 3_000);
    assert.equal(capAtNearestLimit(10_000, limits(null, 8_000), now), 8_000);
    assert.equal(capAtNearestLimit(1_000, limits(3_000, 8_000), now), 1_000);
    assert.equal(capAtNearestLimit(1_000, limits(-5_000, null), now), 0);
  });

  it('give a prediction its run time, or the caller\'s deadline if that comes sooner', () => {
    assert.deepEqual(predictionDeadline({ deadline_at: null }, 600, now), at(600_000));
    assert.deepEqual(predictionDeadline({ deadline_at: at(90_000) }, 600, now), at(90_000));
    assert.deepEqual(predictionDeadline({ deadline_at: at(900_000) }, 600, now), at(600_000));
  });

  it('tell the provider the whole seconds left, but never less than it accepts', () => {
    assert.equal(cancelAfterSeconds(at(600_000), 5, now), 600);
    assert.equal(cancelAfterSeconds(at(90_500), 5, now), 91);
    assert.equal(cancelAfterSeconds(at(2_000), 5, now), 5);
  });
});
