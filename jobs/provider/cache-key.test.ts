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
