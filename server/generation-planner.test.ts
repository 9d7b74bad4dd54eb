import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { partSeeds, upscaleFactorFor } from './generation-planner.ts';

describe('part seeds', () => {
  it('count up from the request\'s seed, wrapping at 2^32', () => {
    assert.deepEqual(partSeeds(7, 4), [7, 8, 9, 10]);
    assert.deepEqual(partSeeds(2 ** 32 - 2, 3), [2 ** 32 - 2, 2 ** 32 - 1, 0]);
  });
  it('are drawn distinct at random without one', () => {
    const seeds = partSeeds(null, 4);
    assert.equal(new Set(seeds).size, 4);
    assert.ok(seeds.every((seed) => Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32));
  });
});

describe('the optimiser\'s upscale factor', () => {
  const max = 40_000_000;
  it('is none when the short edge reaches the target', () => {
    assert.equal(upscaleFactorFor({ width: 2000, height: 1024 }, 1024, max), null);
  });
  it('is 2 when doubling reaches the target, else 4', () => {
    assert.equal(upscaleFactorFor({ width: 900, height: 600 }, 1024, max), 2);
    assert.equal(upscaleFactorFor({ width: 400, height: 300 }, 1024, max), 4);
  });
  it('keeps under the pixel limit: 2 when 4 is too much, none when even 2 is', () => {
    assert.equal(upscaleFactorFor({ width: 4000, height: 500 }, 1024, 16_000_000), 2);
    assert.equal(upscaleFactorFor({ width: 9000, height: 500 }, 1024, 16_000_000), null);
  });
});
