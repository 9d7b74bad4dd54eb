// The realtime use case behind `onUpdate`: check what the caller may watch, then stream.
import type { Kysely } from 'kysely';
import { decodePosition } from '../../db/events.ts';
import { findBatch, findGeneration } from '../../db/generations.ts';
import type { Database } from '../../db/schema.ts';
import { badRequest, forbidden, notFound } from '../errors.ts';
import { assertMayReadBatch, assertMayReadGeneration, type Caller } from '../caller.ts';
import type { WatchInput } from '../api-types.ts';
import type { EventMessage, RealtimeService, SubscriberConnection } from '../services.ts';
import type { EventFeed } from './event-feed.ts';
import { estimateQueue, type EstimateSettings } from '../../db/queue-estimates.ts';
import { openSubscription, type QueueUpdates } from './subscription.ts';
import type { TrackedEnvelope } from '@trpc/server';

export interface RealtimeServiceOptions {
  db: Kysely<Database>;
  feed: EventFeed;
  publicUrl: () => string;
  /** Live events waiting for one subscriber before it counts as too slow. */
  maxBuffered: number;
  /** Bytes waiting in one WebSocket's send buffer before its reader counts as too slow. */
  maxSocketBufferBytes: number;
  queueUpdateMs: number;
  /** What the queue estimate needs to follow the dispatcher's order. */
  estimates: EstimateSettings;
}

export function createRealtimeService(options: RealtimeServiceOptions): RealtimeService {
  const { db } = options;
  return {
    /** Throws NOT_FOUND / BAD_REQUEST before anything streams, so the error reaches the client typed. */
    async watch(
      caller: Caller,
      request: WatchInput,
      connection: SubscriberConnection | undefined,
      signal: AbortSignal | undefined,
    ): Promise<AsyncGenerator<TrackedEnvelope<EventMessage>>> {
      let queueUpdates: QueueUpdates | undefined;
      if (request.generationId) {
        const generation = await findGeneration(db, caller.tenantId, request.generationId);
        if (!generation) throw notFound('generation', request.generationId);
        assertMayReadGeneration(caller, generation);
        queueUpdates = {
          intervalMs: options.queueUpdateMs,
          estimate: async () => {
            const current = await findGeneration(db, caller.tenantId, generation.id);
            return current?.state === 'queued' ? estimateQueue(db, current, options.estimates) : null;
          },
        };
      } else if (request.batchId) {
        if (!(await findBatch(db, caller.tenantId, request.batchId))) throw notFound('batch', request.batchId);
        assertMayReadBatch(caller, request.batchId);
      } else if (caller.scope) {
        throw forbidden(`this token only grants access to ${caller.scope.kind} ${caller.scope.id}; subscribe to it by id`);
      }
      if (request.lastEventId && !decodePosition(request.lastEventId)) {
        throw badRequest('lastEventId is not an event id from this subscription', { lastEventId: ['not an event id'] });
      }
      return openSubscription(
        {
          tenantId: caller.tenantId,
          ...(request.generationId ? { generationId: request.generationId } : {}),
          ...(request.batchId ? { batchId: request.batchId } : {}),
          ...(request.lastEventId ? { lastEventId: request.lastEventId } : {}),
        },
        {
          db,
          feed: options.feed,
          publicUrl: options.publicUrl,
          maxBuffered: options.maxBuffered,
          maxSocketBufferBytes: options.maxSocketBufferBytes,
          connection,
          signal,
          ...(queueUpdates ? { queueUpdates } : {}),
        },
      );
    },
  };
}
