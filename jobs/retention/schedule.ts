// Retention runs on a pg-boss schedule: every worker process registers the same schedule (an
// upsert of one row), pg-boss sends one job per occurrence, and the queue's 'exclusive' policy
// lets one run be queued or running at a time — so one process prunes, whichever takes the job.
import type { Logger } from '../logger.ts';
import { QUEUES, type JobQueue } from '../queue.ts';
import type { Pruner } from './pruner.ts';

export async function scheduleRetention(options: { queue: JobQueue; pruner: Pruner; cron: string; logger: Logger }): Promise<() => Promise<void>> {
  const { boss } = options.queue;
  // Occurrences missed while no process ran: one run catches up on all of them.
  await boss.schedule(QUEUES.retention, options.cron, null, { missed: 'once' });
  // A shutdown ends a run after the batch in hand; the next scheduled run goes on.
  const stopping = new AbortController();
  await boss.work(QUEUES.retention, async () => {
    await options.pruner.run({ signal: stopping.signal }).catch((error: unknown) => {
      options.logger.warn('retention run failed; the next one goes on', { error: error instanceof Error ? error.message : String(error) });
      throw error;
    });
  });
  return async () => {
    stopping.abort();
    await boss.offWork(QUEUES.retention, { wait: true });
  };
}
