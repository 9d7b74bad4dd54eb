import type { FaultState } from './faults.ts';
import type { FileStore } from './file-store.ts';
import type { InputStore } from './input-store.ts';
import type { ResolvedOptions } from './options.ts';
import type { PredictionEngine } from './predictions.ts';
import type { TokenBucket } from './rate-limit.ts';
import type { RenderCache } from './render-cache.ts';
import type { StatsCounters } from './stats.ts';
import type { TimerRegistry } from './timers.ts';

/** Everything one simulator instance owns; handed to the route handlers. */
export interface SimulatorContext {
  readonly options: ResolvedOptions;
  /** The only token /v1 accepts. */
  readonly apiToken: string;
  readonly webhookSecret: string;
  readonly engine: PredictionEngine;
  readonly files: FileStore;
  /** Predictions' input images, by content. */
  readonly inputs: InputStore;
  readonly faults: FaultState;
  readonly stats: StatsCounters;
  readonly timers: TimerRegistry;
  readonly buckets: { readonly creates: TokenBucket; readonly reads: TokenBucket };
  readonly renders: RenderCache;
  baseUrl(): string;
}
