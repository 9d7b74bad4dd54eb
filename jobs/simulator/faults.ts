import { z } from 'zod';

// Runtime fault injection: set from code (simulator.faults.set) or over HTTP (POST /_sim/faults).

const latencySchema = z
  .object({ min: z.number().min(0), max: z.number().min(0) })
  .refine((l) => l.max >= l.min, { message: 'latencyMs.max must be >= latencyMs.min' });

export const faultSettingsSchema = z.strictObject({
  /** 0..1, fraction of new predictions that fail with a model error. */
  failureRate: z.number().min(0).max(1).optional(),
  /** The next `count` /v1 requests answer this status (default 500). null clears. */
  http5xx: z
    .strictObject({ count: z.number().int().min(0), status: z.union([z.literal(500), z.literal(502), z.literal(503)]).optional() })
    .nullable()
    .optional(),
  /** The next `count` /v1 requests, or all for `forMs`, answer 429. null clears. */
  throttle: z
    .union([z.strictObject({ count: z.number().int().min(0) }), z.strictObject({ forMs: z.number().min(0) })])
    .nullable()
    .optional(),
  /** The next `count` /v1 requests wait `ms` before being handled. null clears. */
  hang: z.strictObject({ count: z.number().int().min(0), ms: z.number().min(0) }).nullable().optional(),
  /** Do not deliver webhooks (including pending retries). */
  dropWebhooks: z.boolean().optional(),
  /** Run time drawn per new prediction. */
  latencyMs: latencySchema.optional(),
});

export type FaultSettings = z.infer<typeof faultSettingsSchema>;

export interface FaultSnapshot {
  failureRate: number;
  latencyMs: { min: number; max: number };
  http5xx: { remaining: number; status: 500 | 502 | 503 } | null;
  throttle: { remaining: number } | { untilMs: number } | null;
  hang: { remaining: number; ms: number } | null;
  dropWebhooks: boolean;
}

export interface FaultControls {
  /** Applies the given settings; fields left out keep their current value. Throws on invalid input. */
  set(settings: FaultSettings): void;
  /** Back to the values the simulator was created with. */
  clear(): void;
  snapshot(): FaultSnapshot;
}

export class FaultState implements FaultControls {
  readonly #defaults: { failureRate: number; latencyMs: { min: number; max: number } };
  readonly #now: () => number;
  #state: FaultSnapshot;

  constructor(defaults: { failureRate: number; latencyMs: { min: number; max: number } }, now: () => number = Date.now) {
    this.#defaults = { failureRate: defaults.failureRate, latencyMs: { ...defaults.latencyMs } };
    this.#now = now;
    this.#state = this.#initial();
  }

  set(settings: FaultSettings): void {
    const parsed = faultSettingsSchema.parse(settings);
    const next = { ...this.#state };
    if (parsed.failureRate !== undefined) next.failureRate = parsed.failureRate;
    if (parsed.latencyMs !== undefined) next.latencyMs = { ...parsed.latencyMs };
    if (parsed.dropWebhooks !== undefined) next.dropWebhooks = parsed.dropWebhooks;
    if (parsed.http5xx !== undefined) {
      next.http5xx = parsed.http5xx === null ? null : { remaining: parsed.http5xx.count, status: parsed.http5xx.status ?? 500 };
    }
    if (parsed.throttle !== undefined) {
      const t = parsed.throttle;
      next.throttle = t === null ? null : 'count' in t ? { remaining: t.count } : { untilMs: this.#now() + t.forMs };
    }
    if (parsed.hang !== undefined) {
      next.hang = parsed.hang === null ? null : { remaining: parsed.hang.count, ms: parsed.hang.ms };
    }
    this.#state = next;
  }

  clear(): void {
    this.#state = this.#initial();
  }

  snapshot(): FaultSnapshot {
    return structuredClone(this.#state);
  }

  get failureRate(): number {
    return this.#state.failureRate;
  }

  get latencyMs(): { min: number; max: number } {
    return this.#state.latencyMs;
  }

  get dropWebhooks(): boolean {
    return this.#state.dropWebhooks;
  }

  /** Consumes one hang, returning how long to wait, or null. */
  takeHang(): number | null {
    const hang = this.#state.hang;
    if (hang === null || hang.remaining <= 0) return null;
    hang.remaining--;
    return hang.ms;
  }

  /** Consumes one injected 5xx, returning its status, or null. */
  take5xx(): 500 | 502 | 503 | null {
    const fault = this.#state.http5xx;
    if (fault === null || fault.remaining <= 0) return null;
    fault.remaining--;
    return fault.status;
  }

  /** Consumes one injected 429; returns the seconds to report ("resets in ~Ns"), or null. */
  takeThrottle(fallbackSeconds: () => number): number | null {
    const throttle = this.#state.throttle;
    if (throttle === null) return null;
    if ('untilMs' in throttle) {
      const left = throttle.untilMs - this.#now();
      return left > 0 ? Math.max(1, Math.ceil(left / 1000)) : null;
    }
    if (throttle.remaining <= 0) return null;
    throttle.remaining--;
    return fallbackSeconds();
  }

  #initial(): FaultSnapshot {
    return {
      failureRate: this.#defaults.failureRate,
      latencyMs: { ...this.#defaults.latencyMs },
      http5xx: null,
      throttle: null,
      hang: null,
      dropWebhooks: false,
    };
  }
}
