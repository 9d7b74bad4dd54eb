// Group commit: many concurrent submits share writes, and each caller learns its own outcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createGroupCommit } from './group-commit.ts';

class BadItem extends Error {}

/** A write that records the groups it was given and waits for `release()` while told to hold. */
function recordingWrite(options: { refuse?: (item: number) => boolean; hold?: boolean } = {}) {
  const groups: number[][] = [];
  let release: () => void = () => {};
  let held = options.hold ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
  return {
    groups,
    release: () => {
      release();
      held = Promise.resolve();
    },
    async write(items: readonly number[]) {
      groups.push([...items]);
      await held;
      if (items.some((item) => options.refuse?.(item))) throw new BadItem('refused');
    },
  };
}

describe('group commit', () => {
  it('writes a lone request at once, alone', async () => {
    const recorder = recordingWrite();
    const commits = createGroupCommit({ write: recorder.write, maxItems: 10, maxConcurrentFlushes: 1, isItemError: () => false });
    await commits.submit(1);
    assert.deepEqual(recorder.groups, [[1]]);
  });

  it('gathers requests that arrive during a write into the next one, up to maxItems', async () => {
    const recorder = recordingWrite({ hold: true });
    const commits = createGroupCommit({ write: recorder.write, maxItems: 3, maxConcurrentFlushes: 1, isItemError: () => false });
    const all = [1, 2, 3, 4, 5, 6].map((item) => commits.submit(item));
    recorder.release();
    await Promise.all(all);
    assert.deepEqual(recorder.groups, [[1], [2, 3, 4], [5, 6]]);
  });

  it('keeps up to maxConcurrentFlushes writes in flight', async () => {
    const recorder = recordingWrite({ hold: true });
    const commits = createGroupCommit({ write: recorder.write, maxItems: 10, maxConcurrentFlushes: 2, isItemError: () => false });
    const all = [1, 2, 3].map((item) => commits.submit(item));
    assert.deepEqual(recorder.groups, [[1], [2]], 'the third waits for a flush to come free');
    recorder.release();
    await Promise.all(all);
    assert.deepEqual(recorder.groups, [[1], [2], [3]]);
  });

  it('fails only the item whose data was refused, writing its neighbours alone', async () => {
    const recorder = recordingWrite({ hold: true, refuse: (item) => item === 3 });
    const commits = createGroupCommit({ write: recorder.write, maxItems: 10, maxConcurrentFlushes: 1, isItemError: (error) => error instanceof BadItem });
    const outcomes = Promise.allSettled([1, 2, 3, 4].map((item) => commits.submit(item)));
    recorder.release();
    assert.deepEqual((await outcomes).map((outcome) => outcome.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    assert.deepEqual(recorder.groups, [[1], [2, 3, 4], [2], [3], [4]]);
  });

  it('fails the whole group at once when the failure is not about data (the database is down)', async () => {
    let writes = 0;
    const commits = createGroupCommit<number>({
      write: async () => {
        writes += 1;
        await new Promise((resolve) => setImmediate(resolve));
        throw new Error('connection terminated');
      },
      maxItems: 10,
      maxConcurrentFlushes: 1,
      isItemError: () => false,
    });
    const outcomes = await Promise.allSettled([1, 2, 3].map((item) => commits.submit(item)));
    assert.ok(outcomes.every((outcome) => outcome.status === 'rejected'));
    assert.equal(writes, 2, 'one write for the first, one for the two that gathered; none alone');
  });
});
