// What subscribers receive for an event (RealtimeEvent, api-types.ts): its stage and the state
// it implies, plus the assets when it is a success and the batch's counts when it belongs to a batch.
import type { Kysely } from 'kysely';
import { decodePosition, encodePosition, type FeedPosition } from '../../db/events.ts';
import { countBatchStates, listAssets } from '../../db/generations.ts';
import type { Asset, Database, GenerationEvent, GenerationState } from '../../db/schema.ts';
import type { AssetView, RealtimeEvent } from '../api-types.ts';
import type { EventMessage } from '../services.ts';

/**
 * An event with its JSON text made once. The feed hands the same instance to every subscriber
 * in the process and the WebSocket encoder splices the text into each subscriber's message
 * (see ws-encoder.ts); anything else that serializes it gets the same JSON through toJSON().
 */
export class EncodedEvent implements EventMessage {
  readonly event: RealtimeEvent;
  readonly json: string;
  /** The event's feed position, decoded once for every subscriber that compares it. */
  readonly position: FeedPosition | undefined;
  constructor(event: RealtimeEvent) {
    this.event = event;
    this.json = JSON.stringify(event);
    this.position = decodePosition(event.id);
  }
  toJSON(): RealtimeEvent {
    return this.event;
  }
}

const STATE_OF_STAGE: Record<string, GenerationState> = {
  queued: 'queued',
  deferred: 'queued',
  // Served from an identical generation: it waits for it (or for its copy), not for a slot.
  'cache.hit': 'queued',
  'cache.joined': 'queued',
  'cache.released': 'queued',
  // Held until what it builds on exists (migration 0023); a composite until its assembly starts.
  'input.awaited': 'queued',
  'input.ready': 'queued',
  'part.succeeded': 'queued',
  succeeded: 'succeeded',
  failed: 'failed',
  canceled: 'canceled',
};

export function assetView(asset: Asset, publicUrl: string): AssetView {
  return {
    outputIndex: asset.output_index,
    kind: asset.kind,
    platform: asset.platform,
    format: asset.format,
    width: asset.width,
    height: asset.height,
    bytes: asset.bytes,
    contentHash: asset.content_hash,
    contentType: asset.content_type,
    url: `${publicUrl}/assets/${asset.storage_key}`,
  };
}

/**
 * Builds the views for a page of events (same order) with one query per kind of extra, not
 * one per event. Views carry no tenant: the feed routes them by the event row's tenant.
 */
export async function toRealtimeEvents(db: Kysely<Database>, events: readonly GenerationEvent[], publicUrl: string): Promise<RealtimeEvent[]> {
  const succeeded = events.filter((event) => event.stage === 'succeeded').map((event) => event.generation_id);
  const batchIds = [...new Set(events.flatMap((event) => (event.batch_id ? [event.batch_id] : [])))];
  const [assets, batches] = await Promise.all([
    listAssets(db, succeeded),
    Promise.all(batchIds.map(async (batchId) => [batchId, await countBatchStates(db, batchId)] as const)),
  ]);
  const countsByBatch = new Map(batches);
  return events.map((event) => {
    const view: RealtimeEvent = {
      id: encodePosition(event),
      generationId: event.generation_id,
      batchId: event.batch_id,
      subject: event.subject,
      stage: event.stage,
      state: STATE_OF_STAGE[event.stage] ?? 'running',
      at: event.at.toISOString(),
      data: event.data,
    };
    if (event.stage === 'succeeded') {
      view.assets = assets.filter((asset) => asset.generation_id === event.generation_id).map((asset) => assetView(asset, publicUrl));
    }
    const counts = event.batch_id ? countsByBatch.get(event.batch_id) : undefined;
    if (counts) {
      const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
      view.batch = { counts, total, done: counts.queued + counts.running === 0 };
    }
    return view;
  });
}
