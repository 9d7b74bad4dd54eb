import type { PreparedImage } from './image-operations.ts';
import type { ModelVersion } from './models.ts';
import type { PredictionStatus } from './stats.ts';
import type { TimerHandle } from './timers.ts';
import type { GenerationParams } from './validation.ts';
import type { WebhookEvent } from './webhooks.ts';

// One prediction as the simulator keeps it. Everything that decides its course is drawn when it
// is created and stored as wall-clock times (startsAt, runMs, deadlineAt), so its course can be
// replayed from those times alone, after a restart too.

export type Outcome = { kind: 'succeed' } | { kind: 'fail'; error: string };

/** What Replicate deletes an hour after completion (with the output files). */
export interface PredictionData {
  readonly input: Record<string, unknown>;
  readonly params: GenerationParams;
}

export interface PredictionRecord {
  readonly seq: number;
  readonly id: string;
  readonly model: ModelVersion;
  /** "owner/name" when created through a deployment. */
  readonly deployment: string | null;
  readonly webhook: string | null;
  readonly webhookEvents: ReadonlySet<WebhookEvent>;
  readonly seed: number;
  /** Outputs it makes when it succeeds (metrics.image_count outlives the data). */
  readonly imageCount: number;
  /** Denoising steps shown in its progress logs. */
  readonly steps: number;
  readonly createdAt: number;
  /** When it leaves `starting` (created_at plus the queue delay drawn then). */
  readonly startsAt: number;
  /** Time spent processing once started. */
  readonly runMs: number;
  readonly outcome: Outcome;
  /** From Cancel-After: not started by then → aborted; still running → canceled. */
  readonly deadlineAt: number | null;
  /** null once removed (data_removed). */
  data: PredictionData | null;
  /** The input image once fetched and checked (models that take one); null before that. */
  prepared: PreparedImage | null;
  status: PredictionStatus;
  startedAt: number | null;
  completedAt: number | null;
  error: string | null;
  /** In memory only: timers and listeners of a live prediction. */
  readonly live: LiveState;
}

export interface LiveState {
  readonly timers: Set<TimerHandle>;
  readonly finalListeners: Set<() => void>;
  readonly logListeners: Set<(lines: readonly string[]) => void>;
  /** Progress steps already told to log listeners. */
  stepsTold: number;
  lastProgressWebhookAt: number;
  progressWebhookScheduled: boolean;
  /** The input image is being fetched; when that ended (a run never ends before its input is in). */
  preparing: boolean;
  preparedAt: number | null;
}

export function newLiveState(): LiveState {
  return { timers: new Set(), finalListeners: new Set(), logListeners: new Set(), stepsTold: -1, lastProgressWebhookAt: 0, progressWebhookScheduled: false, preparing: false, preparedAt: null };
}
