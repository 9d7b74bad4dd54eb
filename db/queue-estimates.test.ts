import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dispatchPosition, startInMs } from './queue-estimates.ts';

describe('the queue estimate follows the dispatch order', () => {
  it('alone in the system: its place in its lane', () => {
    assert.equal(dispatchPosition({ ahead: 7, weight: 1, pass: 0 }, []), 7);
  });

  it('beside an equal backlogged lane: every other slot', () => {
    // Our 4th (3 ahead) goes at virtual time 3; the other lane's at 0, 1, 2, 3 go first (a tie counts as first).
    assert.equal(dispatchPosition({ ahead: 3, weight: 1, pass: 0 }, [{ waiting: 5000, weight: 1, pass: 0 }]), 3 + 4);
  });

  it('a small lane beside a big one counts only what it has', () => {
    assert.equal(dispatchPosition({ ahead: 1000, weight: 1, pass: 0 }, [{ waiting: 20, weight: 1, pass: 0 }]), 1020);
  });

  it('weights: a lane of weight 4 gets four slots per one of weight 1', () => {
    // Ours (weight 1), 10 ahead: virtual time 10; the pro lane's items at 0, 0.25, …, 10 → 41 go first.
    assert.equal(dispatchPosition({ ahead: 10, weight: 1, pass: 0 }, [{ waiting: 10_000, weight: 4, pass: 0 }]), 10 + 41);
    // Seen from the pro lane: 40 ahead is virtual time 10, the free lane's 0..10 → 11 go first.
    assert.equal(dispatchPosition({ ahead: 40, weight: 4, pass: 0 }, [{ waiting: 10_000, weight: 1, pass: 0 }]), 40 + 11);
  });

  it('a lane that is ahead in virtual time waits its turn', () => {
    assert.equal(dispatchPosition({ ahead: 0, weight: 1, pass: 5 }, [{ waiting: 100, weight: 1, pass: 0 }]), 6);
    assert.equal(dispatchPosition({ ahead: 0, weight: 1, pass: 0 }, [{ waiting: 100, weight: 1, pass: 5 }]), 0);
  });

  it('start: (position + 1) slots at the steady rate', () => {
    assert.equal(startInMs(0, 600), 100);
    assert.equal(startInMs(59, 60), 60_000);
    // A newcomer's 10th behind a 5,000 backlog at 600/min: 9 ahead + 10 of the other → 2 s.
    assert.equal(startInMs(dispatchPosition({ ahead: 9, weight: 1, pass: 0 }, [{ waiting: 5000, weight: 1, pass: 0 }]), 600), 2000);
  });
});
