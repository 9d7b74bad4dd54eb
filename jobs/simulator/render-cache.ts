// Output images are rendered on first download (they are deterministic, so nothing needs to be
// stored per prediction) and kept in a small LRU so repeated downloads are cheap. It is bounded by
// count and by bytes: an upscaled output can be tens of megabytes.

/** Enough for a demo's or load test's working set of placeholder images and a few large outputs. */
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

interface Entry {
  readonly pending: Promise<Buffer>;
  /** Known once rendered. */
  size: number;
}

export class RenderCache {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(maxEntries = 64, maxBytes = DEFAULT_MAX_BYTES) {
    this.#maxEntries = maxEntries;
    this.#maxBytes = maxBytes;
  }

  get(key: string, render: () => Promise<Buffer>): Promise<Buffer> {
    const cached = this.#entries.get(key);
    if (cached !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, cached);
      return cached.pending;
    }
    const entry: Entry = { pending: render(), size: 0 };
    entry.pending.then(
      (bytes) => {
        if (this.#entries.get(key) !== entry) return;
        entry.size = bytes.length;
        this.#bytes += bytes.length;
        this.#evict();
      },
      () => this.#remove(key, entry),
    );
    this.#entries.set(key, entry);
    this.#evict();
    return entry.pending;
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #evict(): void {
    // The newest entry stays even if it alone is over the byte budget: its caller holds it anyway.
    while (this.#entries.size > 1 && (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes)) {
      const oldest = this.#entries.entries().next();
      if (oldest.done === true) break;
      this.#remove(oldest.value[0], oldest.value[1]);
    }
  }

  #remove(key: string, entry: Entry): void {
    if (this.#entries.get(key) !== entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.size;
  }
}
