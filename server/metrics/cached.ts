// A value that is costly to read (a database query) and asked for often (every scrape, every
// probe): read once, reused while fresh, and shared by every caller that asks while a read is
// under way — so ten scrapers at once, or a probe every second, cost one read per `ttlMs`.
export interface Cached<T> {
  get(): Promise<T>;
}

/** A failed read is not kept: the next call reads again. `now` is for tests. */
export function cached<T>(ttlMs: number, read: () => Promise<T>, now: () => number = () => performance.now()): Cached<T> {
  let fresh: { value: T; readAt: number } | undefined;
  let reading: Promise<T> | undefined;
  return {
    get() {
      if (fresh && now() - fresh.readAt < ttlMs) return Promise.resolve(fresh.value);
      reading ??= read()
        .then((value) => {
          fresh = { value, readAt: now() };
          return value;
        })
        .finally(() => {
          reading = undefined;
        });
      return reading;
    },
  };
}

/** `promise`, or `fallback` if it has not settled within `ms` (it is left to finish on its own). */
export async function within<T>(promise: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
