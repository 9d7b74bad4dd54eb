// Concurrent admissions on one request budget share a statement, as concurrent `generate` calls
// share a transaction (group-commit.ts): under load, the requests of a busy tenant that arrive
// while one admission is in flight are admitted together in the next, all of them or, if
// together they do not fit, each on its own in arrival order — so some are admitted and the
// rest refused, exactly as one at a time would. At low load a request goes at once, alone.
import type { Admission } from '../db/gcra.ts';
import type { RequestBudget } from '../db/request-limits.ts';

export type AdmitOne = (budget: RequestBudget, count: number) => Promise<Admission>;

interface Waiting {
  count: number;
  resolve(admission: Admission): void;
  reject(error: unknown): void;
}

export function createSharedAdmission(admitOne: AdmitOne): AdmitOne {
  // Per budget (and rate, should a tenant's limits change meanwhile), while an admission is in
  // flight: who waits for the next. A budget is here exactly while its flush runs.
  const budgets = new Map<string, { budget: RequestBudget; waiting: Waiting[] }>();

  async function flush(key: string, slot: { budget: RequestBudget; waiting: Waiting[] }): Promise<void> {
    try {
      while (slot.waiting.length > 0) {
        const group = slot.waiting.splice(0);
        const total = group.reduce((sum, entry) => sum + entry.count, 0);
        if (group.length > 1 && total <= slot.budget.burst) {
          try {
            const together = await admitOne(slot.budget, total);
            if (together.admitted) {
              for (const entry of group) entry.resolve(together);
              continue;
            }
          } catch (error) {
            for (const entry of group) entry.reject(error);
            continue;
          }
        }
        for (const entry of group) {
          try {
            entry.resolve(await admitOne(slot.budget, entry.count));
          } catch (error) {
            entry.reject(error);
          }
        }
      }
    } finally {
      budgets.delete(key);
    }
  }

  return (budget, count) =>
    new Promise<Admission>((resolve, reject) => {
      const key = `${budget.key}|${budget.perMinute}|${budget.burst}`;
      const running = budgets.get(key);
      if (running) {
        running.waiting.push({ count, resolve, reject });
        return;
      }
      const slot = { budget, waiting: [{ count, resolve, reject }] };
      budgets.set(key, slot);
      void flush(key, slot);
    });
}
