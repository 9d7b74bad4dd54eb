import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdFactory } from './ids.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('ids', () => {
  it('are UUIDv7s carrying their millisecond', () => {
    const id = createIdFactory(() => 0x0123456789ab)();
    assert.match(id, UUID_V7);
    assert.equal(id.replaceAll('-', '').slice(0, 12), '0123456789ab');
  });

  it('sort in creation order within one millisecond, and stay distinct past a page of random bits', () => {
    const newId = createIdFactory(() => 1_700_000_000_000);
    const ids = Array.from({ length: 1000 }, newId);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(new Set(ids.map((id) => id.slice(19))).size, ids.length, 'random tails differ');
    for (const id of ids) assert.match(id, UUID_V7);
  });

  it('never go backwards when the clock does', () => {
    let now = 2_000;
    const newId = createIdFactory(() => now);
    const first = newId();
    now = 1_000;
    assert.ok(newId() > first);
  });
});
