// Group commit: concurrent requests that each need a small write are written together in
// one transaction. At low load a request is flushed at once, alone (no added latency); under
// load, requests arriving while a flush is in flight join the next one. The database then
// pays one transaction, one round trip per statement and one NOTIFY for many requests.
// Each caller is answered only after the commit that contains its write.

export interface GroupCommitOptions<T> {
  /** Writes all items in one transaction; throws if the transaction failed. */
  write(items: readonly T[]): Promise<void>;
  /** Items per transaction at the most. */
  maxItems: number;
  /** Transactions in flight at once; more overlaps round trips, fewer makes bigger groups. */
  maxConcurrentFlushes: number;
  /** Whether a failure may be caused by one item's data (and so worth retrying items alone). */
  isItemError(error: unknown): boolean;
}

export interface GroupCommit<T> {
  submit(item: T): Promise<void>;
}

interface Pending<T> {
  item: T;
  resolve(): void;
  reject(error: unknown): void;
}

export function createGroupCommit<T>(options: GroupCommitOptions<T>): GroupCommit<T> {
  const queue: Pending<T>[] = [];
  let flushing = 0;

  async function flush(): Promise<void> {
    flushing += 1;
    try {
      while (queue.length > 0) {
        const group = queue.splice(0, options.maxItems);
        await writeGroup(group);
      }
    } finally {
      flushing -= 1;
    }
  }

  async function writeGroup(group: Pending<T>[]): Promise<void> {
    try {
      await options.write(group.map((pending) => pending.item));
      for (const pending of group) pending.resolve();
    } catch (error) {
      // One bad item must not fail its neighbours: when the data was refused, write each alone
      // to find out whose it was. Any other failure (connection lost, database down) is the
      // whole group's, and writing each alone would only multiply it.
      if (group.length > 1 && options.isItemError(error)) {
        await Promise.all(group.map((pending) => writeGroup([pending])));
        return;
      }
      for (const pending of group) pending.reject(error);
    }
  }

  return {
    submit(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (flushing < options.maxConcurrentFlushes) void flush();
      });
    },
  };
}
