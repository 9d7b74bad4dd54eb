// What the worker does with each kind of failure in each phase: the table, row by row.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PermanentProviderError, ProviderUnavailableError, RateLimitedError, TransientProviderError } from '../provider/errors.ts';
import { UnusableImageError } from '../render/render-variants.ts';
import { decideOnFailure, type FailedJob } from './failure-table.ts';
import { UnusableSourceError } from './input-files.ts';

const firstTry: FailedJob = { retryCount: 0, retryLimit: 5, shuttingDown: false };
const lastTry: FailedJob = { retryCount: 5, retryLimit: 5, shuttingDown: false };
const polls = { initialMs: 250, maxMs: 2000 };

const rateLimited = new RateLimitedError('booked', { retryInMs: 3_000 });
const breakerOpen = new ProviderUnavailableError('open', { retryInMs: 10_000 });
const timedOut = new TransientProviderError('timed out after 30000 ms', { publicReason: 'the provider did not answer in time', ambiguous: true });
const refused = new PermanentProviderError('422 from provider', { publicReason: 'prompt is required' });
const bug = new TypeError("Cannot read properties of undefined (reading 'id')");

describe('the failure table', () => {
  it('hands every job back untouched while the process stops', () => {
    for (const phase of ['create', 'poll', 'finish', 'cancel'] as const) {
      assert.deepEqual(decideOnFailure(phase, timedOut, { ...firstTry, shuttingDown: true }, polls), { kind: 'abandon' });
    }
  });

  it('writes nothing while the database cannot be reached: the job goes back to the queue', () => {
    const lost = Object.assign(new Error('Connection terminated unexpectedly'), {});
    for (const phase of ['create', 'poll', 'finish', 'cancel'] as const) {
      assert.deepEqual(decideOnFailure(phase, lost, lastTry, polls), { kind: 'abandon' }, phase);
    }
  });

  it('defers a create that meets a booked budget or an open breaker, for as long as they say', () => {
    assert.deepEqual(decideOnFailure('create', rateLimited, firstTry), { kind: 'defer', inMs: 3_000, reason: 'waiting for the provider rate limit' });
    assert.deepEqual(decideOnFailure('create', breakerOpen, lastTry), { kind: 'defer', inMs: 10_000, reason: breakerOpen.publicReason }, 'a deferral is not a retry');
  });

  it('polls again when the provider is busy or failing, not this prediction', () => {
    assert.deepEqual(decideOnFailure('poll', rateLimited, firstTry, polls), { kind: 'poll-again', inMs: 3_000 });
    assert.deepEqual(decideOnFailure('poll', timedOut, lastTry, polls), { kind: 'poll-again', inMs: 2_000 });
  });

  it('retries transient failures and bugs with backoff, and fails at the retry limit with a code a client can act on', () => {
    assert.deepEqual(decideOnFailure('create', timedOut, firstTry), { kind: 'retry', reason: 'the provider did not answer in time' });
    assert.deepEqual(decideOnFailure('create', timedOut, lastTry), {
      kind: 'fail',
      code: 'provider_unavailable',
      message: 'the provider kept failing: the provider did not answer in time',
    });
    assert.deepEqual(decideOnFailure('finish', bug, firstTry), { kind: 'retry', reason: 'internal error' }, 'no internals reach clients');
    assert.deepEqual(decideOnFailure('finish', bug, lastTry), { kind: 'fail', code: 'internal_error', message: 'processing failed repeatedly' });
  });

  it('fails at once when retrying cannot help, with the provider\'s reason', () => {
    assert.deepEqual(decideOnFailure('create', refused, firstTry), { kind: 'fail', code: 'provider_rejected', message: 'prompt is required' });
    assert.deepEqual(decideOnFailure('poll', refused, firstTry, polls), {
      kind: 'fail',
      code: 'provider_failed',
      message: 'the provider no longer knows the prediction: prompt is required',
    });
    assert.deepEqual(decideOnFailure('finish', new UnusableImageError('output is not an image'), firstTry), { kind: 'fail', code: 'unusable_output', message: 'output is not an image' });
  });

  it('fails a create whose input image cannot be used at once, before anything is sent', () => {
    const broken = new UnusableSourceError('source s1 cannot be decoded (PNG, it may be truncated or corrupt); upload a sound copy of the image');
    assert.deepEqual(decideOnFailure('create', broken, firstTry), { kind: 'fail', code: 'unusable_source', message: broken.message });
  });

  it('drops a cancel that has nothing left to cancel, or that kept failing', () => {
    assert.deepEqual(decideOnFailure('cancel', refused, firstTry), { kind: 'drop' });
    assert.deepEqual(decideOnFailure('cancel', timedOut, firstTry), { kind: 'retry', reason: 'the provider did not answer in time' });
    assert.deepEqual(decideOnFailure('cancel', timedOut, lastTry), { kind: 'drop' });
  });
});
