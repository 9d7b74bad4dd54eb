// Output images are rendered on first download (they are deterministic, so nothing needs to be
// stored per prediction) and kept in a small LRU so repeated downloads are cheap.

export class RenderCache {
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Promise<Buffer>>();

  constructor(maxEntries = 64) {
    this.#maxEntries = maxEntries;
  }

  get(key: string, render: () => Promise<Buffer>): Promise<Buffer> {
    const cached = this.#entries.get(key);
    if (cached !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, cached);
      return cached;
    }
    const pending = render();
    pending.catch(() => this.#entries.delete(key));
    this.#entries.set(key, pending);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    return pending;
  }

  clear(): void {
    this.#entries.clear();
  }
}
