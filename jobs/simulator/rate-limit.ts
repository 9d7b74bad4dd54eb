// Token bucket: refills continuously at ratePerMinute / 60 per second and holds at most `burst`
// tokens, so short bursts above the steady rate pass (Replicate: "short bursts tolerated").

export type TakeResult = { ok: true } | { ok: false; resetSeconds: number };

export class TokenBucket {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(ratePerMinute: number, burst: number, now: () => number = Date.now) {
    if (!(ratePerMinute > 0)) throw new RangeError('ratePerMinute must be > 0');
    if (!(burst >= 1)) throw new RangeError('burst must be >= 1');
    this.#capacity = burst;
    this.#refillPerMs = ratePerMinute / 60_000;
    this.#now = now;
    this.#tokens = burst;
    this.#updatedAt = now();
  }

  tryTake(): TakeResult {
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { ok: true };
    }
    return { ok: false, resetSeconds: this.secondsUntilToken() };
  }

  /** Whole seconds until one token is available again (at least 1, as Replicate's "~Ns"). */
  secondsUntilToken(): number {
    this.#refill();
    const missing = Math.max(0, 1 - this.#tokens);
    return Math.max(1, Math.ceil(missing / this.#refillPerMs / 1000));
  }

  /** Whole requests that would pass right now. */
  remaining(): number {
    this.#refill();
    return Math.floor(this.#tokens);
  }

  /** Whole seconds until the bucket is full again (at least 1). */
  secondsUntilFull(): number {
    this.#refill();
    return Math.max(1, Math.ceil((this.#capacity - this.#tokens) / this.#refillPerMs / 1000));
  }

  reset(): void {
    this.#tokens = this.#capacity;
    this.#updatedAt = this.#now();
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.#capacity, this.#tokens + elapsed * this.#refillPerMs);
    this.#updatedAt = now;
  }
}

/** Default burst: ten seconds' worth of the steady rate (100 creates, 500 reads at Replicate's limits). */
export function defaultBurst(ratePerMinute: number): number {
  return Math.max(1, Math.ceil(ratePerMinute / 6));
}
