// Shared admissions: concurrent requests on one budget are admitted together when they fit,
// else one by one in arrival order — the same outcome as one at a time, in fewer statements.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admit } from '../db/gcra.ts';
import type { RequestBudget } from '../db/request-limits.ts';
import { createSharedAdmission } from './shared-admission.ts';

/** A budget kept in memory by the GCRA rule itself, counting the statements it would run. */
function budgetInMemory() {
  const tats = new Map<string, number>();
  const calls: number[] = [];
  const admitOne = async (budget: RequestBudget, count: number) => {
    calls.push(count);
    await new Promise((resolve) => setImmediate(resolve)); // a round trip
    const step = admit({ tat: tats.get(budget.key) ?? 0 }, budget, 1_000_000, count);
    tats.set(budget.key, step.tat);
    return step.admission;
  };
  return { admitOne, calls };
}

const budget: RequestBudget = { key: 't:a', perMinute: 6, burst: 10 };

describe('shared admission', () => {
  it('admits concurrent requests that fit in one statement after the first', async () => {
    const memory = budgetInMemory();
    const shared = createSharedAdmission(memory.admitOne);
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => shared(budget, 1)));
    assert.ok(outcomes.every((outcome) => outcome.admitted));
    assert.deepEqual(memory.calls, [1, 7], 'the first alone, the seven that came meanwhile together');
  });

  it('falls back to one at a time when together they do not fit: exactly the burst is admitted', async () => {
    const memory = budgetInMemory();
    const shared = createSharedAdmission(memory.admitOne);
    const outcomes = await Promise.all(Array.from({ length: 25 }, () => shared(budget, 1)));
    assert.equal(outcomes.filter((outcome) => outcome.admitted).length, 10);
    assert.ok(outcomes.slice(0, 10).every((outcome) => outcome.admitted), 'in arrival order');
    assert.ok(outcomes.slice(10).every((outcome) => !outcome.admitted && outcome.retryInMs > 0));
  });

  it('keeps budgets apart, and a failure reaches only its group', async () => {
    const failing = createSharedAdmission(async () => {
      throw new Error('database away');
    });
    await assert.rejects(failing(budget, 1), /database away/);
    const memory = budgetInMemory();
    const shared = createSharedAdmission(memory.admitOne);
    const [a, b] = await Promise.all([shared(budget, 10), shared({ ...budget, key: 't:b' }, 10)]);
    assert.ok(a.admitted && b.admitted, 'a full burst each: separate budgets');
  });
});
