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
import { PREPARED } from './database.ts';
import { inLane, laneCtes, laneWeight } from './dispatch.ts';
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

/** Our virtual time: our lane's next turn, moved on by 1 / weight for each generation ahead of us. */
export function turnOf(mine: { ahead: number; weight: number; pass: number }): number {
  return mine.pass + mine.ahead / mine.weight;
}

/**
 * How many of a lane's generations go before virtual time `turn`, if it has that many: those
 * at pass, pass + 1/w, … up to `turn` (a tie is counted as going first, the pessimistic side).
 */
export function goingBefore(turn: number, lane: { weight: number; pass: number }): number {
  return Math.max(0, Math.floor((turn - lane.pass) * lane.weight + 1e-9) + 1);
}

/**
 * Generations dispatched before the one that has `ahead` before it in its own lane `mine`,
 * with `others` the other lanes that have work waiting.
 */
export function dispatchPosition(mine: { ahead: number; weight: number; pass: number }, others: readonly LaneLoad[]): number {
  const turn = turnOf(mine);
  return others.reduce((before, lane) => before + Math.min(lane.waiting, goingBefore(turn, lane)), mine.ahead);
}

/** When the generation `position` dispatches from now goes out, at the budget's steady rate (ms from now). */
export function startInMs(position: number, createsPerMinute: number): number {
  return ((position + 1) / (createsPerMinute / 60)) * 1000;
}

/** How far back run times are taken from. */
const WINDOW_SECONDS = 600;

/**
 * Where a waiting generation stands. Two reads, each bounded by the answer rather than by the
 * backlog: the lanes (found through the index, one probe each) with what is ahead of it in its
 * own; then, from each other lane, its generations that go before it — counted only up to the
 * number that could (`goingBefore`). A generation deep in a 50,000 backlog costs a count of
 * index entries up to its place; one near the front costs almost nothing. Both statements are
 * prepared (db/database.ts): status and realtime ask often, and planning them costs more than
 * running them near the front.
 */
export async function estimateQueue(
  db: Kysely<Database>,
  generation: { id: string; tenant_id: string; model: string; dispatched_at: Date | null },
  settings: EstimateSettings,
): Promise<QueueEstimate> {
  const [position, runs] = await Promise.all([
    generation.dispatched_at === null ? positionInQueue(db, generation.id, settings) : 0,
    sql<{ avg_run_seconds: number | null }>`
      SELECT avg(extract(epoch FROM r.finished_at - r.started_at))::float8 AS avg_run_seconds FROM generations r
      WHERE r.model = ${generation.model} AND r.state = 'succeeded'
        AND r.finished_at > now() - make_interval(secs => ${WINDOW_SECONDS})
    `.execute(db),
  ]);
  // Dispatched: its create slot is at most the dispatch horizon away.
  const startAt = new Date(Date.now() + (generation.dispatched_at === null ? startInMs(position, settings.createsPerMinute) : 0));
  const runSeconds = runs.rows[0]?.avg_run_seconds ?? null;
  return { position, estimatedStartAt: startAt, estimatedFinishAt: runSeconds === null ? null : new Date(startAt.getTime() + runSeconds * 1000) };
}

async function positionInQueue(db: Kysely<Database>, id: string, settings: EstimateSettings): Promise<number> {
  const { rows } = await sql<{ tenant_id: string; subject: string | null; kind: string; tier: string; pass: number | null; lanes_of_tenant: string; clock: number; ahead: string | null }>`${PREPARED}
    WITH RECURSIVE ${laneCtes(sql<boolean>`true`)},
    me AS (
      SELECT g.id, g.tenant_id, g.dispatch_order, (CASE WHEN t.share_by = 'subject' THEN g.subject END) AS subject
      FROM generations g JOIN tenants t ON t.id = g.tenant_id WHERE g.id = ${id}
    )
    SELECT lane.tenant_id, lane.subject, lane.kind, t.tier, d.pass, count(*) OVER (PARTITION BY lane.tenant_id) AS lanes_of_tenant,
      (SELECT clock FROM dispatch_clock WHERE id = 1) AS clock,
      CASE WHEN lane.tenant_id = me.tenant_id AND lane.subject IS NOT DISTINCT FROM me.subject THEN
        (SELECT count(*) FROM ${inLane('lane', sql<boolean>`(q.dispatch_order, q.id) < (me.dispatch_order, me.id)`, null)} ahead)
      END AS ahead
    FROM lane
    JOIN tenants t ON t.id = lane.tenant_id
    LEFT JOIN dispatch_lanes d ON d.lane = lane.key
    CROSS JOIN me
  `.execute(db);
  // Its own lane is the one row that counted what is ahead of it.
  const mine = rows.find((row) => row.ahead !== null);
  if (!mine) return 0;
  const weightOf = (tier: string) => settings.tierWeights[tier] ?? settings.defaultWeight;
  const clock = mine.clock;
  const turnAt = (row: (typeof rows)[number]) => ({
    weight: laneWeight(weightOf(row.tier), Number(row.lanes_of_tenant)),
    pass: Math.max(row.pass ?? clock, clock),
  });
  const ahead = Number(mine.ahead);
  const turn = turnOf({ ahead, ...turnAt(mine) });
  const others = rows.filter((row) => row !== mine).map((row) => ({ row, bound: goingBefore(turn, turnAt(row)) })).filter((lane) => lane.bound > 0);
  if (others.length === 0) return ahead;
  // Each other lane's waiting generations that go before ours: min(waiting, bound), counted up to bound.
  const { rows: counted } = await sql<{ before: string }>`${PREPARED}
    SELECT coalesce(sum((SELECT count(*) FROM ${inLane('l', sql<boolean>`true`, sql`l.bound`)} going)), 0) AS before
    FROM unnest(${others.map((lane) => lane.row.tenant_id)}::uuid[], ${others.map((lane) => lane.row.subject)}::text[],
      ${others.map((lane) => lane.row.kind)}::text[], ${others.map((lane) => lane.bound)}::int[]) AS l(tenant_id, subject, kind, bound)
  `.execute(db);
  return ahead + Number(counted[0]?.before ?? 0);
}
