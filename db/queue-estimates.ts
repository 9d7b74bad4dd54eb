// Where a queued generation stands: its position in its lane (same model; workers take higher
// priority first, then older first) and when it should start and finish, from the lane's
// recent throughput and run times.
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

export interface QueueEstimate {
  /** Generations ahead of this one in its lane. */
  position: number;
  /** Null while the lane has no recent history to estimate from. */
  estimatedStartAt: Date | null;
  estimatedFinishAt: Date | null;
}

/** How far back throughput and run times are taken from. */
const WINDOW_SECONDS = 600;

export async function estimateQueue(
  db: Kysely<Database>,
  generation: { id: string; model: string; priority: number; created_at: Date },
): Promise<QueueEstimate> {
  const row = await sql<{ ahead: string; finished: string; avg_run_seconds: number | null }>`
    SELECT
      (SELECT count(*) FROM generations q
        WHERE q.state = 'queued' AND q.model = ${generation.model}
          AND (q.priority > ${generation.priority}
               OR (q.priority = ${generation.priority} AND (q.created_at, q.id) < (${generation.created_at}, ${generation.id}::uuid)))) AS ahead,
      (SELECT count(*) FROM generations f
        WHERE f.model = ${generation.model} AND f.state IN ('succeeded', 'failed')
          AND f.finished_at > now() - make_interval(secs => ${WINDOW_SECONDS})) AS finished,
      (SELECT avg(extract(epoch FROM r.finished_at - r.started_at))::float8 FROM generations r
        WHERE r.model = ${generation.model} AND r.state = 'succeeded'
          AND r.finished_at > now() - make_interval(secs => ${WINDOW_SECONDS})) AS avg_run_seconds
  `.execute(db);
  const result = row.rows[0];
  const position = Number(result?.ahead ?? 0);
  const perSecond = Number(result?.finished ?? 0) / WINDOW_SECONDS;
  const runSeconds = result?.avg_run_seconds ?? null;
  if (perSecond === 0 || runSeconds === null) return { position, estimatedStartAt: null, estimatedFinishAt: null };
  // Everything ahead has to start first; at the lane's recent pace that takes position / rate.
  const startAt = new Date(Date.now() + ((position + 1) / perSecond) * 1000);
  return { position, estimatedStartAt: startAt, estimatedFinishAt: new Date(startAt.getTime() + runSeconds * 1000) };
}
