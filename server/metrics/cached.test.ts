import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cached, within } from './cached.ts';

describe('cached', () => {
  it('reads once while fresh, and again once stale', async () => {
    let clock = 0;
    let reads = 0;
    const value = cached(1000, async () => ++reads, () => clock);
    assert.equal(await value.get(), 1);
    clock = 999;
    assert.equal(await value.get(), 1);
    clock = 1000;
    assert.equal(await value.get(), 2);
  });

  it('shares one read among callers that ask while it is under way', async () => {
    let reads = 0;
    let finish: (n: number) => void = () => {};
    const value = cached(0, () => {
      reads += 1;
      return new Promise<number>((resolve) => (finish = resolve));
    });
    const both = Promise.all([value.get(), value.get()]);
    finish(7);
    assert.deepEqual(await both, [7, 7]);
    assert.equal(reads, 1);
  });

  it('keeps no failure: the next call reads again', async () => {
    let reads = 0;
    const value = cached(60_000, async () => {
      reads += 1;
      if (reads === 1) throw new Error('database away');
      return reads;
    });
    await assert.rejects(value.get(), /database away/);
    assert.equal(await value.get(), 2);
  });
});

describe('within', () => {
  it('answers the value when it comes in time, the fallback when it does not', async () => {
    assert.equal(await within(Promise.resolve(1), 1000, () => 0), 1);
    assert.equal(await within(new Promise<number>(() => {}), 10, () => 0), 0);
  });
});
