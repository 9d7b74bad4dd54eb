// The WebSocket adapter's encoder: plain JSON, except that an event the feed has already
// encoded is spliced in as text instead of being stringified again for every subscriber.
import { randomUUID } from 'node:crypto';
import { jsonEncoder, type Encoder } from '@trpc/server/adapters/ws';
import { EncodedEvent } from './event-view.ts';

/** `onEventSent`: told of every subscription event encoded for a socket (each is written once). */
export function createRealtimeEncoder(options: { onEventSent?: () => void } = {}): Encoder {
  // A stand-in no client can guess, so nothing a client sends (such as its request id) can
  // be mistaken for it.
  const slot = `kiln-encoded-event:${randomUUID()}`;
  const quotedSlot = JSON.stringify(slot);
  return {
    encode(message) {
      const tracked = trackedEventIn(message);
      if (!tracked) {
        if (isSubscriptionData(message)) options.onEventSent?.();
        return jsonEncoder.encode(message);
      }
      options.onEventSent?.();
      const { envelope, result, event } = tracked;
      const text = JSON.stringify({ ...envelope, result: { ...result, data: { id: result.data.id, data: slot } } });
      return text.replace(quotedSlot, () => event.json);
    },
    decode: (data) => jsonEncoder.decode(data),
  };
}

interface TrackedResult {
  data: { id: unknown; data: EncodedEvent };
}

/**
 * A subscription result carrying a pre-encoded event. tRPC sends a `tracked(id, event)` as
 * `{ id, jsonrpc, result: { type: 'data', id, data: { id, data: event } } }`.
 */
function trackedEventIn(message: unknown): { envelope: object; result: TrackedResult; event: EncodedEvent } | undefined {
  if (!isRecord(message) || !isRecord(message.result)) return undefined;
  const { result, ...envelope } = message;
  const data = result.data;
  if (!isRecord(data) || !(data.data instanceof EncodedEvent)) return undefined;
  return { envelope, result: result as unknown as TrackedResult, event: data.data };
}

/** A subscription's data message that was not pre-encoded (an event built for this subscriber alone, such as a queue position). */
function isSubscriptionData(message: unknown): boolean {
  return isRecord(message) && isRecord(message.result) && message.result.type === 'data';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
