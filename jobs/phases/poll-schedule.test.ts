// When the next poll comes: the arithmetic alone, without a queue or a provider.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { learnTypical, observedDurationMs, pollDelayMs, type NextPoll, type PollSettings } from './poll-schedule.ts';

const settings: PollSettings = { initialMs: 250, backoffFactor: 1.5, maxMs: 2000, firstAtShareOfTypical: 0.8, typicalWeight: 0.2, shareOfReads: 0.8 };
const now = 1_000_000;
const quiet: NextPoll = { polls: 0, createdAt: now, soon: false, typicalMs: undefined, backstopMs: undefined, awaiting: 0, readsPerMinute: 3000, now };

describe('poll spacing', () => {
  it('polls first at the soonest interval while a model is unknown', () => {
    assert.equal(pollDelayMs(quiet, settings), 250);
  });

  it('polls first shortly before a known model usually finishes', () => {
    assert.equal(pollDelayMs({ ...quiet, typicalMs: 10_000 }, settings), 8_000);
    assert.equal(pollDelayMs({ ...quiet, typicalMs: 100 }, settings), 250, 'never sooner than the soonest interval');
  });

  it('backs off by the factor after each poll, up to the maximum', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((polls) => pollDelayMs({ ...quiet, polls }, settings));
    assert.deepEqual(delays.slice(0, 4), [375, 562.5, 843.75, 1265.625]);
    assert.ok(delays.every((delay) => delay <= 2000));
    assert.equal(delays.at(-1), 2000);
  });

  it('with webhooks, looks only once the backstop has passed the expected finish', () => {
    const withWebhooks = { ...quiet, backstopMs: 60_000, typicalMs: 5_000 };
    assert.equal(pollDelayMs(withWebhooks, settings), 65_000);
    // A prediction created 3 s ago that usually takes 5 s: 2 s to its expected finish, then the backstop.
    assert.equal(pollDelayMs({ ...withWebhooks, createdAt: now - 3_000 }, settings), 62_000);
    // Of unknown age (taken over after a crash): counted from now.
    assert.equal(pollDelayMs({ ...withWebhooks, createdAt: 0 }, settings), 65_000);
  });

  it('looks soon when asked, webhooks or not', () => {
    assert.equal(pollDelayMs({ ...quiet, soon: true, backstopMs: 60_000, typicalMs: 20_000 }, settings), 250);
  });

  it('spaces every prediction in flight so that all polls fit in their share of the read budget', () => {
    // 3,000 reads/min × 0.8 = 40 polls/s: with 400 predictions in flight, each polls every 10 s at most.
    assert.equal(pollDelayMs({ ...quiet, awaiting: 400 }, settings), 10_000);
    assert.equal(pollDelayMs({ ...quiet, awaiting: 400, soon: true }, settings), 10_000, 'soon still fits the budget');
    assert.equal(pollDelayMs({ ...quiet, awaiting: 4 }, settings), 250, 'a light load leaves the schedule alone');
  });
});

describe('a model\'s typical duration', () => {
  it('starts at the first observation and moves a fifth of the way to each new one', () => {
    const first = learnTypical(undefined, 10_000, settings);
    assert.equal(first, 10_000);
    assert.equal(learnTypical(first, 20_000, settings), 12_000);
  });

  it('is learnt from the provider\'s time from create to end, only of successes', () => {
    assert.equal(observedDurationMs({ status: 'succeeded', totalSeconds: 0.13 }), 130);
    assert.equal(observedDurationMs({ status: 'failed', totalSeconds: 0.01 }), undefined, 'a refused input fails at once');
    assert.equal(observedDurationMs({ status: 'canceled', totalSeconds: 2 }), undefined, 'a cancel cuts the run short');
    assert.equal(observedDurationMs({ status: 'succeeded', totalSeconds: null }), undefined, 'the provider did not say');
  });

  it('settles at the real duration however late the polls come, where our own clock would not', () => {
    // A 130 ms model whose polls are each picked up 800 ms late: the first poll always finds it done.
    const realMs = 130;
    const lagMs = 800;
    const polled = (typicalMs: number | undefined) => pollDelayMs({ ...quiet, typicalMs }, settings) + lagMs;
    let learnt: number | undefined;
    let seenByUs: number | undefined;
    for (let prediction = 0; prediction < 60; prediction += 1) {
      assert.ok(polled(learnt) >= realMs, 'the first poll finds it done');
      learnt = learnTypical(learnt, observedDurationMs({ status: 'succeeded', totalSeconds: realMs / 1000 })!, settings);
      seenByUs = learnTypical(seenByUs, polled(seenByUs), settings);
    }
    assert.equal(learnt, realMs);
    assert.equal(pollDelayMs({ ...quiet, typicalMs: learnt }, settings), 250, 'so the first poll comes at the soonest interval');
    // Learnt from our own poll times instead, the estimate climbs towards lag ÷ (1 − share): 5 × the lag.
    assert.ok(seenByUs! > 3_500, `our own clock gave ${Math.round(seenByUs!)} ms`);
  });
});
