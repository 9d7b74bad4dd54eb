// Retention: prunes old events, finished generations (their assets with them) and empty
// batches, then deletes the stored objects no asset names any more. Everything goes in small
// batches with pauses between, so the hot paths keep their locks and their I/O; a run stops
// after its time budget and the next one goes on where it left off.
import type { Kysely } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import { claimOrphanedKeys, pruneEmptyBatches, pruneFinishedGenerations, pruneOldEvents, pruneExpiredProviderFiles, pruneTombstones } from '../../db/retention.ts';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../logger.ts';
import type { AssetStorage } from '../storage/storage.ts';

export interface RetentionPolicy {
  /** Events of final generations older than this are pruned; undefined: kept. */
  eventsDays: number | undefined;
  /** Generations finished longer ago than this are pruned, with their assets; undefined: kept. */
  generationsDays: number | undefined;
  /** Rows one statement deletes at most. */
  batchSize: number;
  /** Pause between two batches. */
  pauseMs: number;
  /** A run stops after this long; the next one goes on. */
  maxRunMs: number;
  /** Orphaned keys one batch deletes the objects of (their rows stay locked meanwhile). */
  objectBatchSize: number;
  /** An orphaned key waits this long before its object is deleted. */
  orphanGraceSeconds: number;
  /** How long a deleted object's tombstone is kept. */
  tombstoneSeconds: number;
}

export interface PruneReport {
  events: number;
  generations: number;
  batches: number;
  objects: number;
  /** Expired provider files forgotten. */
  providerFiles: number;
  /** Whether the run stopped (its time budget, or a shutdown) with work perhaps left. */
  cutShort: boolean;
}

export interface Pruner {
  /** One run of the policy, as of `now`; an aborted signal ends it after the batch in hand. */
  run(options?: { now?: Date; signal?: AbortSignal }): Promise<PruneReport>;
}

const DAY_MS = 24 * 3600_000;

export function createPruner(options: { db: Kysely<Database>; storage: AssetStorage; logger: Logger; policy: RetentionPolicy }): Pruner {
  const { db, storage, policy } = options;
  return {
    async run({ now = new Date(), signal }: { now?: Date; signal?: AbortSignal } = {}) {
      const report: PruneReport = { events: 0, generations: 0, batches: 0, objects: 0, providerFiles: 0, cutShort: false };
      const stopAt = performance.now() + policy.maxRunMs;
      /** Runs `step` until it says it is done, pausing between batches; false when the time budget ran out first. */
      const loop = async (step: () => Promise<boolean>): Promise<boolean> => {
        for (;;) {
          if (performance.now() >= stopAt || signal?.aborted) return false;
          if (!(await step())) return true;
          await sleep(policy.pauseMs);
        }
      };
      const limit = policy.batchSize;
      const stages: (() => Promise<boolean>)[] = [];
      if (policy.generationsDays !== undefined) {
        const before = new Date(now.getTime() - policy.generationsDays * DAY_MS);
        stages.push(() =>
          loop(async () => {
            const deleted = await pruneFinishedGenerations(db, { finishedBefore: before, limit });
            report.generations += deleted;
            return deleted === limit;
          }),
        );
        stages.push(() =>
          loop(async () => {
            const deleted = await pruneEmptyBatches(db, { createdBefore: before, limit });
            report.batches += deleted;
            return deleted === limit;
          }),
        );
      }
      if (policy.eventsDays !== undefined) {
        const before = new Date(now.getTime() - policy.eventsDays * DAY_MS);
        let after = '0';
        stages.push(() =>
          loop(async () => {
            const page = await pruneOldEvents(db, { after, before, limit });
            report.events += page.deleted;
            if (page.next === undefined) return false;
            after = page.next;
            return true;
          }),
        );
      }
      // Objects last: the stages above are what orphan them.
      const orphanedBefore = new Date(now.getTime() - policy.orphanGraceSeconds * 1000);
      stages.push(() =>
        loop(async () => {
          const claim = await db.transaction().execute(async (trx) => {
            const claimed = await claimOrphanedKeys(trx, { orphanedBefore, limit: policy.objectBatchSize });
            // Before the commit: until then a worker recording one of these keys waits for the
            // tombstone, and stores its object again.
            if (claimed.keys.length > 0) await storage.delete(claimed.keys);
            return claimed;
          });
          report.objects += claim.keys.length;
          return claim.seen === policy.objectBatchSize;
        }),
      );
      const deletedBefore = new Date(now.getTime() - policy.tombstoneSeconds * 1000);
      stages.push(() => loop(async () => (await pruneTombstones(db, { deletedBefore, limit })) === limit));
      // Files the provider has deleted by now: the next generation of such an image uploads it again.
      stages.push(() =>
        loop(async () => {
          const deleted = await pruneExpiredProviderFiles(db, { expiredBefore: now, limit });
          report.providerFiles += deleted;
          return deleted === limit;
        }),
      );

      for (const stage of stages) {
        if (!(await stage())) {
          report.cutShort = true;
          break;
        }
      }
      if (report.events + report.generations + report.batches + report.objects + report.providerFiles > 0 || report.cutShort) {
        options.logger.info('retention pruned', { ...report });
      }
      return report;
    },
  };
}
