import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson, providerFingerprint } from './cache-key.ts';
import { MODELS, type ModelRequest } from './models.ts';

const request: ModelRequest = { operation: 'text-to-image', prompt: 'a tin', negativePrompt: null, aspectRatio: '1:1', seed: 3, strength: null, scale: null, outputs: 1 };
const hash = (name: string) => createHash('sha256').update(name).digest('hex');

describe('provider fingerprints with reference images', () => {
  it('name every reference by its content, in order', () => {
    const model = 'google/nano-banana';
    const [a, b] = [hash('a'), hash('b')];
    assert.equal(providerFingerprint(model, request, null, [a, b]), providerFingerprint(model, request, null, [a, b]));
    assert.notEqual(providerFingerprint(model, request, null, [a, b]), providerFingerprint(model, request, null, [b, a]), 'another order is another input');
    assert.notEqual(providerFingerprint(model, request, null, [a]), providerFingerprint(model, request, null, [a, b]));
    const edit = { ...request, operation: 'edit' as const };
    assert.notEqual(providerFingerprint(model, edit, a, [b]), providerFingerprint(model, edit, b, [a]), 'the source is not a reference');
  });

  it("leave the fingerprints of requests without references as they were", () => {
    const model = 'black-forest-labs/flux-schnell';
    const before = createHash('sha256').update(canonicalJson({ route: MODELS[model].route, input: { prompt: 'a tin', aspect_ratio: '1:1', output_format: 'png', num_outputs: 1, seed: 3 } })).digest('hex');
    assert.equal(providerFingerprint(model, request), before);
    assert.equal(providerFingerprint(model, request, null, []), before);
  });
});

describe('canonical JSON', () => {
  /** What it must equal: JSON.stringify with every object's keys sorted. */
  const sortedStringify = (value: unknown) =>
    JSON.stringify(value, (_key, inner: unknown) =>
      inner && typeof inner === 'object' && !Array.isArray(inner) ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : inner,
    );

  it('is JSON.stringify with sorted keys, for every kind of value', () => {
    const values: unknown[] = [
      { b: 1, a: [3, { d: null, c: 'x' }], e: undefined, 'é': true, A: -0.5 },
      [undefined, 1, 'two', [], {}],
      'a "quoted" \u2028 line',
      42,
      null,
      { nested: { deeper: { z: 1, y: [{ k: 'v', j: 2e21 }] } }, at: new Date(0) },
    ];
    for (const value of values) assert.equal(canonicalJson(value), sortedStringify(value));
  });

  it('compares equal values equal whatever their key order', () => {
    assert.equal(canonicalJson({ a: 1, b: { c: 2, d: 3 } }), canonicalJson({ b: { d: 3, c: 2 }, a: 1 }));
  });
});
