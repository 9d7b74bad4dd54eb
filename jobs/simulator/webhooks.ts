import { createHmac, randomBytes } from 'node:crypto';
import { newWebhookMessageId } from './ids.ts';
import type { TimerRegistry } from './timers.ts';

// Webhook signing (Standard Webhooks scheme, as Replicate uses) and delivery with retries.

export const WEBHOOK_EVENTS = ['start', 'output', 'logs', 'completed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
/** Without webhook_events_filter Replicate sends "new outputs or the prediction has finished". */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ['output', 'completed'];

/** Replicate retries the final webhook with backoff, the last try about a minute after completion. */
export const DEFAULT_WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

export function decodeWebhookSecret(secret: string): Buffer {
  if (!secret.startsWith('whsec_')) throw new Error('webhookSecret must look like "whsec_<base64>"');
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  if (key.length === 0) throw new Error('webhookSecret has an empty key');
  return key;
}

/** `v1,<base64 HMAC-SHA256 of "${id}.${timestamp}.${body}">` */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface WebhookSenderOptions {
  readonly secret: string;
  readonly retryDelaysMs: readonly number[];
  readonly timeoutMs: number;
  readonly timers: TimerRegistry;
  /** Checked at each attempt, so the dropWebhooks fault also silences pending retries. */
  readonly isDropped: () => boolean;
  readonly onAttempt: (outcome: 'sent' | 'failed' | 'dropped') => void;
}

/**
 * Delivers webhooks in the background: send() returns at once and never throws, so a slow or
 * broken receiver cannot block the API.
 */
export class WebhookSender {
  readonly #options: WebhookSenderOptions;
  readonly #key: Buffer;
  readonly #inFlight = new Set<AbortController>();

  constructor(options: WebhookSenderOptions) {
    this.#options = options;
    this.#key = decodeWebhookSecret(options.secret);
  }

  send(url: string, body: string, options: { retry: boolean }): void {
    const id = newWebhookMessageId();
    void this.#attempt(url, body, id, options.retry ? 0 : null);
  }

  stop(): void {
    for (const controller of this.#inFlight) controller.abort();
    this.#inFlight.clear();
  }

  async #attempt(url: string, body: string, id: string, retryIndex: number | null): Promise<void> {
    const { timers, isDropped, onAttempt, retryDelaysMs } = this.#options;
    if (timers.stopped) return;
    if (isDropped()) {
      onAttempt('dropped');
      return;
    }
    const ok = await this.#post(url, body, id);
    onAttempt(ok ? 'sent' : 'failed');
    if (ok || retryIndex === null || timers.stopped) return;
    const delay = retryDelaysMs[retryIndex];
    if (delay === undefined) return;
    timers.setTimeout(() => void this.#attempt(url, body, id, retryIndex + 1), delay);
  }

  async #post(url: string, body: string, id: string): Promise<boolean> {
    const timestamp = Math.floor(Date.now() / 1000);
    const controller = new AbortController();
    this.#inFlight.add(controller);
    const timeout = setTimeout(() => controller.abort(), this.#options.timeoutMs);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Replicate-Webhook (kiln simulator)',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(this.#key, id, timestamp, body),
        },
        body,
        signal: controller.signal,
        redirect: 'manual',
      });
      await response.body?.cancel();
      return response.status >= 200 && response.status < 300;
    } catch {
      return false;
    } finally {
      clearTimeout(timeout);
      this.#inFlight.delete(controller);
    }
  }
}
