// Delayed jobs (a poll due in 800 ms, a deferred create) send no NOTIFY when they come due, so
// pg-boss's fetch loops would find them only at their next backstop fetch, up to a second or two
// late. A job this process delays wakes this process's own loops of its queue when it comes due
// instead; other processes' loops still find it at their backstop. A wake for a job whose
// transaction rolled back, or that another process took, costs one fetch that finds nothing.
export interface DueAlarms {
  /** Wake this fetch loop (a pg-boss worker id) when a job of `queue` comes due. */
  watch(queue: string, workerId: string): void;
  /** A job of `queue` was delayed by `delayMs`. */
  delayed(queue: string, delayMs: number): void;
  /** Clears every alarm set. */
  stop(): void;
}

export interface DueAlarmSettings {
  /** Waking this much after the due time, so the database's clock has passed it too; alarms within it share one wake. */
  marginMs: number;
}

export function createDueAlarms(wake: (workerId: string) => void, settings: DueAlarmSettings, now: () => number = Date.now): DueAlarms {
  const watchers = new Map<string, string[]>();
  /** Per queue, the pending wakes by the margin-wide slot they fall in. */
  const alarms = new Map<string, Map<number, NodeJS.Timeout>>();
  const slotMs = Math.max(1, settings.marginMs);

  return {
    watch(queue, workerId) {
      watchers.set(queue, [...(watchers.get(queue) ?? []), workerId]);
    },
    delayed(queue, delayMs) {
      const workers = watchers.get(queue);
      if (!workers || delayMs <= 0) return;
      const slot = Math.ceil((now() + delayMs + settings.marginMs) / slotMs);
      let pending = alarms.get(queue);
      if (!pending) alarms.set(queue, (pending = new Map()));
      if (pending.has(slot)) return;
      const timer = setTimeout(() => {
        pending.delete(slot);
        for (const workerId of workers) wake(workerId);
      }, slot * slotMs - now());
      timer.unref(); // an alarm never keeps a stopping process alive
      pending.set(slot, timer);
    },
    stop() {
      for (const pending of alarms.values()) for (const timer of pending.values()) clearTimeout(timer);
      alarms.clear();
    },
  };
}
