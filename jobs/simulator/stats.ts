// Counters for load tests and demos. Reset by POST /_sim/reset.

export const PREDICTION_STATUSES = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'] as const;
export type PredictionStatus = (typeof PREDICTION_STATUSES)[number];
export const FINAL_STATUSES: readonly PredictionStatus[] = ['succeeded', 'failed', 'canceled', 'aborted'];

export function isFinal(status: PredictionStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

export interface SimulatorStats {
  /** Predictions created (201 answers to create calls). */
  creates: number;
  /**
   * Creates per value of the `tag` query parameter of the prediction's webhook URL
   * (e.g. webhook https://kiln/webhooks/replicate?tag=gen_123). Creates without a tag are not listed.
   */
  createsByWebhookTag: Record<string, number>;
  /** Other /v1 requests that got past faults, auth and the rate limit. */
  reads: number;
  /** 429 answers, from the rate limit or the throttle fault. */
  throttled: number;
  /** Injected 5xx answers. */
  http5xx: number;
  /** starting/processing: predictions in that state now; final states: how many ended so since reset. */
  predictions: Record<PredictionStatus, number>;
  /** Webhook POSTs answered 2xx. */
  webhooksSent: number;
  /** Webhook POST attempts that failed (non-2xx, network error, timeout); each retry counts. */
  webhooksFailed: number;
  /** Webhooks not delivered because of the dropWebhooks fault. */
  webhooksDropped: number;
}

export class StatsCounters {
  creates = 0;
  createsByWebhookTag = new Map<string, number>();
  reads = 0;
  throttled = 0;
  http5xx = 0;
  finals: Record<'succeeded' | 'failed' | 'canceled' | 'aborted', number> = { succeeded: 0, failed: 0, canceled: 0, aborted: 0 };
  webhooksSent = 0;
  webhooksFailed = 0;
  webhooksDropped = 0;

  countCreate(webhookUrl: string | null): void {
    this.creates++;
    if (webhookUrl === null) return;
    const tag = new URL(webhookUrl).searchParams.get('tag');
    if (tag !== null) this.createsByWebhookTag.set(tag, (this.createsByWebhookTag.get(tag) ?? 0) + 1);
  }

  countFinal(status: PredictionStatus): void {
    if (status === 'starting' || status === 'processing') return;
    this.finals[status]++;
  }

  reset(): void {
    this.creates = 0;
    this.createsByWebhookTag.clear();
    this.reads = 0;
    this.throttled = 0;
    this.http5xx = 0;
    this.finals = { succeeded: 0, failed: 0, canceled: 0, aborted: 0 };
    this.webhooksSent = 0;
    this.webhooksFailed = 0;
    this.webhooksDropped = 0;
  }

  snapshot(live: { starting: number; processing: number }): SimulatorStats {
    return {
      creates: this.creates,
      createsByWebhookTag: Object.fromEntries(this.createsByWebhookTag),
      reads: this.reads,
      throttled: this.throttled,
      http5xx: this.http5xx,
      predictions: { starting: live.starting, processing: live.processing, ...this.finals },
      webhooksSent: this.webhooksSent,
      webhooksFailed: this.webhooksFailed,
      webhooksDropped: this.webhooksDropped,
    };
  }
}
