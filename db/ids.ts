import { randomFillSync } from 'node:crypto';

/**
 * Makes UUIDv7s (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter, then random bits.
 * Made in the application so a caller knows each row's id before the INSERT (no reliance on
 * the order of RETURNING rows); time-ordered so new rows land at the end of the primary-key
 * index; and, thanks to the counter, in creation order within one millisecond too — so the
 * items of a batch list in the order they were given.
 */
export function createIdFactory(now: () => number = Date.now): () => string {
  let lastMs = 0;
  let counter = 0;
  // Random bits drawn a page at a time: one call into the system's generator per 256 ids, not one per id.
  const pool = Buffer.alloc(16 * 256);
  let used = pool.length;
  return () => {
    let ms = now();
    if (ms <= lastMs) {
      counter += 1;
      if (counter > 0xfff) {
        lastMs += 1; // counter exhausted: borrow the next millisecond
        counter = 0;
      }
      ms = lastMs;
    } else {
      lastMs = ms;
      counter = 0;
    }
    if (used === pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    const bytes = pool.subarray(used, (used += 16));
    bytes.writeUIntBE(ms, 0, 6);
    bytes[6] = 0x70 | (counter >> 8); // version 7, counter high bits
    bytes[7] = counter & 0xff;
    bytes[8] = 0x80 | (bytes[8]! & 0x3f); // variant 10
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}
