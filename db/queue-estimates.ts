// Where a queued generation stands, in the dispatcher's order (jobs/dispatch/): how many
// generations will be handed a create slot before it, and so when it should start and finish.
//
// The dispatcher serves lanes (a tenant, or a subject of a tenant shared by subject) by weighted fair queueing: a lane's k-th waiting
// generation goes at virtual time pass + k / weight, and the generations of every lane go in
// order of those times. So the generations before ours are those ahead of it in its own lane
// plus, from each other lane, those whose virtual time comes first — all of a lane that has
// fewer waiting, which is why a small lane beside a big one neither delays it for long nor
// counts at its full share. At the budget's steady rate they take (before + 1) / rate.
// `dispatchPosition` is that arithmetic, plainly; `estimateQueue` reads its inputs.
import { sql, type Kysely } from 'kysely';
import { laneKey, laneSubject, laneWeight } from './dispatch.ts';
import type { Database } from './schema.ts';

export interface QueueEstimate {
  /** Generations that will be dispatched before this one (all lanes, in the dispatcher's order). */
  position: number;
  /** Null while the lane has no recent history to estimate from. */
  estimatedStartAt: Date | null;
  estimatedFinishAt: Date | null;
}

export interface EstimateSettings {
  /** The provider's create budget. */
  createsPerMinute: number;
  /** As the dispatcher ages priority (see jobs/dispatch/select.ts's agedOrderKey). */
  agingSeconds: number;
  tierWeights: Record<string, number>;
  defaultWeight: number;
}

export interface LaneLoad {
  /** Undispatched generations waiting in the lane. */
  waiting: number;
  weight: number;
  /** The lane's next turn in virtual time (already at least the dispatcher's clock). */
  pass: number;
}

/**
 * Generations dispatched before the one that has `ahead` before it in its own lane `mine`,
 * with `others` the other lanes that have work waiting.
 */
export function dispatchPosition(mine: { ahead: number; weight: number; pass: number }, others: readonly LaneLoad[]): number {
  const turn = mine.pass + mine.ahead / mine.weight; // our virtual time
  let before = mine.ahead;
  for (const lane of others) {
    // Its generations at pass, pass + 1/w, …: those strictly before our turn go first (a tie is
    // counted as going first, the pessimistic side).
    const inTime = Math.floor((turn - lane.pass) * lane.weight + 1e-9) + 1;
    before += Math.min(lane.waiting, Math.max(0, inTime));
  }
  return before;
}

/** When the generation `position` dispatches from now goes out, at the budget's steady rate (ms from now). */
export function startInMs(position: number, createsPerMinute: number): number {
  return ((position + 1) / (createsPerMinute / 60)) * 1000;
}

/** How far back run times are taken from. */
const WINDOW_SECONDS = 600;

export async function estimateQueue(
  db: Kysely<Database>,
  generation: { id: string; tenant_id: string; model: string; priority: number; created_at: Date; dispatched_at: Date | null },
  settings: EstimateSettings,
): Promise<QueueEstimate> {
  const aging = settings.agingSeconds;
  const [lanes, runs] = await Promise.all([
    sql<{ tenant_id: string; waiting: string; lanes_of_tenant: string; tier: string; pass: number | null; clock: number; ahead: string | null }>`
      WITH me AS (
        SELECT g.id, g.tenant_id, ${laneSubject('g', 't')} AS subject, g.created_at - make_interval(secs => g.priority * ${aging}::float8) AS k
        FROM generations g JOIN tenants t ON t.id = g.tenant_id WHERE g.id = ${generation.id}
      ),
      lanes AS (
        SELECT g.tenant_id, ${laneSubject('g', 't')} AS subject, count(*) AS waiting, count(*) OVER (PARTITION BY g.tenant_id) AS lanes_of_tenant
        FROM generations g JOIN tenants t ON t.id = g.tenant_id
        WHERE g.state = 'queued' AND g.dispatched_at IS NULL GROUP BY 1, 2
      )
      SELECT l.tenant_id, l.waiting, l.lanes_of_tenant, t.tier, d.pass, (SELECT clock FROM dispatch_clock WHERE id = 1) AS clock,
        CASE WHEN l.tenant_id = me.tenant_id AND l.subject IS NOT DISTINCT FROM me.subject THEN
          (SELECT count(*) FROM generations a
            WHERE a.tenant_id = me.tenant_id AND a.state = 'queued' AND a.dispatched_at IS NULL
              AND ${laneSubject('a', 't')} IS NOT DISTINCT FROM me.subject
              AND (a.created_at - make_interval(secs => a.priority * ${aging}::float8), a.id) < (me.k, me.id))
        END AS ahead
      FROM lanes l
      JOIN tenants t ON t.id = l.tenant_id
      LEFT JOIN dispatch_lanes d ON d.lane = ${laneKey(sql.ref('l.tenant_id'), sql.ref('l.subject'))}
      CROSS JOIN me
    `.execute(db),
    sql<{ avg_run_seconds: number | null }>`
      SELECT avg(extract(epoch FROM r.finished_at - r.started_at))::float8 AS avg_run_seconds FROM generations r
      WHERE r.model = ${generation.model} AND r.state = 'succeeded'
        AND r.finished_at > now() - make_interval(secs => ${WINDOW_SECONDS})
    `.execute(db),
  ]);
  const weightOf = (tier: string) => settings.tierWeights[tier] ?? settings.defaultWeight;
  let position = 0;
  if (generation.dispatched_at === null) {
    const rows = lanes.rows;
    const clock = rows[0]?.clock ?? 0;
    const load = (row: (typeof rows)[number]): LaneLoad => ({
      waiting: Number(row.waiting),
      weight: laneWeight(weightOf(row.tier), Number(row.lanes_of_tenant)),
      pass: Math.max(row.pass ?? clock, clock),
    });
    // Its own lane is the one row that counted what is ahead of it.
    const mine = rows.find((row) => row.ahead !== null);
    if (mine) {
      const own = load(mine);
      position = dispatchPosition({ ahead: Number(mine.ahead ?? 0), weight: own.weight, pass: own.pass }, rows.filter((row) => row !== mine).map(load));
    }
  }
  // Dispatched: its create slot is at most the dispatch horizon away.
  const startAt = new Date(Date.now() + (generation.dispatched_at === null ? startInMs(position, settings.createsPerMinute) : 0));
  const runSeconds = runs.rows[0]?.avg_run_seconds ?? null;
  return { position, estimatedStartAt: startAt, estimatedFinishAt: runSeconds === null ? null : new Date(startAt.getTime() + runSeconds * 1000) };
}
