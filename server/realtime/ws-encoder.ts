// The WebSocket adapter's encoder: plain JSON, except that an event the feed has already
// encoded is spliced in as text instead of being stringified again for every subscriber.
import { randomUUID } from 'node:crypto';
import { jsonEncoder, type Encoder } from '@trpc/server/adapters/ws';
import { EncodedEvent } from './event-view.ts';

export function createRealtimeEncoder(): Encoder {
  // A stand-in no client can guess, so nothing a client sends (such as its request id) can
  // be mistaken for it.
  const slot = `kiln-encoded-event:${randomUUID()}`;
  const quotedSlot = JSON.stringify(slot);
  return {
    encode(message) {
      const tracked = trackedEventIn(message);
      if (!tracked) return jsonEncoder.encode(message);
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
