// Generations that build on generations (migration 0023): chains, where a generation starts
// from another's output, and composites, made of parts that each do their own provider work.
// The failure side (what ends when a parent or a part fails) is the migration's trigger; this
// is the success side and the reads.
import { sql } from 'kysely';
import { DISPATCH_CHANNEL } from './dispatch.ts';
import type { AwaitingKind, Db, Generation, InputImageJson } from './schema.ts';

/** How an inserted generation is tied to others, written in its inserting transaction. */
export interface GenerationTies {
  id: string;
  /** The generation whose output it starts from, and which output. */
  parent?: { id: string; output: number };
  /** The composite it is a part of, and its place there. */
  part?: { of: string; index: number };
  /** Why it is held: its parent has not succeeded yet, or it is a composite waiting for its parts. */
  awaiting?: AwaitingKind;
  /** Whether it may be served from identical work once its input is known (held rows are inserted without). */
  mayReuse?: boolean;
}

/**
 * Ties generations inserted in this transaction (one statement). A child joins its parent's chain
 * — the parent's chain, or a new one named after the parent, which the parent then carries too.
 */
export async function tieGenerations(trx: Db, ties: readonly GenerationTies[]): Promise<void> {
  if (ties.length === 0) return;
  const column = <T>(pick: (tie: GenerationTies) => T) => ties.map(pick);
  await sql`
    WITH tie AS (
      SELECT * FROM unnest(
        ${column((t) => t.id)}::uuid[], ${column((t) => t.parent?.id ?? null)}::uuid[], ${column((t) => t.parent?.output ?? null)}::int[],
        ${column((t) => t.part?.of ?? null)}::uuid[], ${column((t) => t.part?.index ?? null)}::int[],
        ${column((t) => t.awaiting ?? null)}::text[], ${column((t) => t.mayReuse ?? null)}::bool[]
      ) AS v(id, parent_id, parent_output, part_of, part_index, awaiting, may_reuse)
    ),
    held AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT g.id, g.tenant_id, g.batch_id, g.subject, 'input.awaited', jsonb_build_object('generationId', tie.parent_id)
      FROM tie JOIN generations g ON g.id = tie.id WHERE tie.awaiting = 'input'
    )
    UPDATE generations g SET parent_id = tie.parent_id, parent_output = tie.parent_output,
      chain_id = (SELECT coalesce(p.chain_id, p.id) FROM generations p WHERE p.id = tie.parent_id),
      part_of = tie.part_of, part_index = tie.part_index, awaiting = tie.awaiting,
      stage = CASE WHEN tie.awaiting = 'input' THEN 'input.awaited' ELSE g.stage END,
      may_reuse = coalesce(tie.may_reuse, g.may_reuse)
    FROM tie
    WHERE g.id = tie.id
  `.execute(trx);
  // A parent that starts a chain is its root: it carries the chain's id (its own) from now on.
  const parents = [...new Set(ties.flatMap((tie) => (tie.parent ? [tie.parent.id] : [])))];
  if (parents.length > 0) await trx.updateTable('generations').set({ chain_id: sql<string>`id` }).where('id', 'in', parents).where('chain_id', 'is', null).execute();
}

/**
 * The parents that children just queued wait for, locked FOR SHARE until the transaction ends:
 * one that is still running cannot end before the children are committed (its completing
 * update waits for the lock, and then sees them); one that ended before the lock is answered
 * with its state, for the caller to act on.
 */
export async function lockParents(trx: Db, ids: readonly string[]): Promise<Pick<Generation, 'id' | 'state' | 'error_message'>[]> {
  if (ids.length === 0) return [];
  return trx.selectFrom('generations').select(['id', 'state', 'error_message']).where('id', 'in', ids).forShare().execute();
}

/** A held child, as its release needs it (to make its fingerprint). */
export type AwaitingChild = Pick<Generation, 'id' | 'model' | 'prompt' | 'request' | 'parent_output' | 'may_reuse'>;

/** The children waiting for this generation's output, locked until the transaction ends. */
export async function findAwaitingChildren(trx: Db, parentId: string): Promise<AwaitingChild[]> {
  return trx
    .selectFrom('generations')
    .select(['id', 'model', 'prompt', 'request', 'parent_output', 'may_reuse'])
    .where('parent_id', '=', parentId)
    .where('state', '=', 'queued')
    .where('awaiting', '=', 'input')
    .forUpdate()
    .execute();
}

/**
 * Its input is made: each child becomes waiting work, at the place in its lane it was queued
 * at, with its input image and its fingerprint (null: it may not be served from identical work).
 */
export async function releaseChildren(trx: Db, released: readonly { id: string; input: InputImageJson; fingerprint: string | null }[]): Promise<void> {
  if (released.length === 0) return;
  await sql`
    WITH released AS (
      UPDATE generations g SET awaiting = NULL, stage = 'input.ready', updated_at = now(),
        request = g.request || jsonb_build_object('input', r.input), fingerprint = r.fingerprint
      FROM unnest(${released.map((r) => r.id)}::uuid[], ${released.map((r) => JSON.stringify(r.input))}::jsonb[], ${released.map((r) => r.fingerprint)}::text[]) AS r(id, input, fingerprint)
      WHERE g.id = r.id AND g.state = 'queued' AND g.awaiting = 'input'
      RETURNING g.id, g.tenant_id, g.batch_id, g.subject, g.parent_id
    ),
    events AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'input.ready', jsonb_build_object('generationId', parent_id) FROM released
    )
    SELECT pg_notify(${DISPATCH_CHANNEL}, '')
  `.execute(trx);
}

/**
 * A part succeeded: its composite hears of it (an event), and learns whether every part has
 * now succeeded. The composite stays held ('parts') until its assembly starts it, so the
 * dispatcher never takes it for work of its own. Its row is locked first, in a statement of its
 * own, so that of two last parts finishing at once the second counts with the first's success
 * committed: exactly one of them completes it.
 */
export async function notePartSucceeded(trx: Db, part: Pick<Generation, 'id' | 'part_of' | 'part_index'>): Promise<{ compositeId: string; complete: boolean } | undefined> {
  if (part.part_of === null) return undefined;
  const { rows } = await sql<{ id: string }>`
    WITH composite AS (
      SELECT id, tenant_id, batch_id, subject FROM generations WHERE id = ${part.part_of} AND state = 'queued' AND awaiting = 'parts' FOR UPDATE
    ),
    event AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'part.succeeded', jsonb_build_object('partId', ${part.id}::uuid, 'index', ${part.part_index}::int) FROM composite
    )
    SELECT id FROM composite
  `.execute(trx);
  const composite = rows[0];
  if (!composite) return undefined;
  const unfinished = await trx
    .selectFrom('generations')
    .select('id')
    .where('part_of', '=', composite.id)
    .where('id', '<>', part.id)
    .where('state', '<>', 'succeeded')
    .limit(1)
    .executeTakeFirst();
  return { compositeId: composite.id, complete: unfinished === undefined };
}

/** A tenant's generations by id (those that are not its are not found). */
export async function findGenerationsByIds(db: Db, tenantId: string, ids: readonly string[]): Promise<Generation[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('generations').selectAll().where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
}

/** A composite's parts, in order. */
export async function listParts(db: Db, compositeId: string): Promise<Generation[]> {
  return db.selectFrom('generations').selectAll().where('part_of', '=', compositeId).orderBy('part_index').execute();
}

/** The generations made from this one's outputs, oldest first. */
export async function listChildren(db: Db, tenantId: string, parentId: string): Promise<Generation[]> {
  return db.selectFrom('generations').selectAll().where('parent_id', '=', parentId).where('tenant_id', '=', tenantId).orderBy('created_at').orderBy('id').execute();
}

/** The chain's latest success (its root included): one probe of generations_chain_latest. */
export async function findLatestOfChain(db: Db, tenantId: string, chainId: string): Promise<Generation | undefined> {
  return db
    .selectFrom('generations')
    .selectAll()
    .where('chain_id', '=', chainId)
    .where('state', '=', 'succeeded')
    .where('tenant_id', '=', tenantId)
    .orderBy('finished_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}
