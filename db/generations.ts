// Queries on generations and their events. Every state change writes its event row in the
// same statement or transaction, so the event log never disagrees with the row.
import { PREPARED } from './database.ts';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Asset, Database, Db, Generation, GenerationEvent, GenerationRequestJson, GenerationState, NewAsset, ServedFromKind } from './schema.ts';

export interface NewGenerationInput {
  /** Chosen by the caller (see ids.ts), so it knows each row's id without reading RETURNING order. */
  id: string;
  tenantId: string;
  batchId: string | null;
  prompt: string;
  model: string;
  request: GenerationRequestJson;
  priority: number;
  idempotencyKey: string | null;
  /** Whom within the tenant it is for; null when the request named none. */
  subject: string | null;
  /** Seconds from now until the generation must be final; null: no deadline. */
  deadlineSeconds: number | null;
  /** How much earlier than now it counts in its lane's dispatch order: its priority's worth of waiting (jobs/dispatch/select.ts). */
  agedBySeconds: number;
  /** How its model is billed, the price of one image or GPU second, what it reserves if its tenant is metered, and what it is charged when served from another (micro-dollars; see credits.ts). */
  price: { per: 'image' | 'gpu-second'; unit: number; reserve: number; cache: number };
  /** sha256 of its provider input (jobs/provider/cache-key.ts): identical requests of a tenant share it; null: not known yet, or no provider work (a composite). */
  fingerprint: string | null;
  /** Whether it may be served from an identical generation of its tenant. */
  mayReuse: boolean;
  /** The API request that queued it, and its call's trace context (W3C traceparent): what the worker's lines and spans link to. */
  requestId: string | null;
  traceparent: string | null;
}

/** How an inserted generation is served: by its own work (null), or from another. */
export interface InsertedGeneration {
  id: string;
  servedFrom: { kind: ServedFromKind; generationId: string } | null;
}

/**
 * The rows as given, and how each would be served and what it reserves — the cache lookup, one
 * index probe per distinct input (migration 0014): a generation that may reuse is served from its
 * tenant's earlier success of the same input ('cache': it reserves only its cache price), or joins
 * the oldest identical work in flight ('joined': it reserves its full price, as it may have to run
 * on its own), or — within the statement — the first identical row before it. A tenant that is not
 * metered reserves nothing. CTEs `input`, `earlier`, `served` and `decided` (its `reserved`),
 * shared by the insert and by the quote of a refused one, so the two cannot disagree. `lock`: the
 * rows found are locked FOR SHARE (the insert's, so they cannot end unseen).
 */
function decideServing(inputs: readonly NewGenerationInput[], lock: boolean) {
  const column = <T>(pick: (input: NewGenerationInput) => T) => inputs.map(pick);
  return sql`
    input AS (
      SELECT * FROM unnest(
        ${column((i) => i.id)}::uuid[], ${column((i) => i.tenantId)}::uuid[], ${column((i) => i.batchId)}::uuid[],
        ${column((i) => i.prompt)}::text[], ${column((i) => i.model)}::text[], ${column((i) => JSON.stringify(i.request))}::jsonb[],
        ${column((i) => i.priority)}::int[], ${column((i) => i.idempotencyKey)}::text[], ${column((i) => i.subject)}::text[],
        ${column((i) => i.deadlineSeconds)}::float8[], ${column((i) => i.agedBySeconds)}::float8[],
        ${column((i) => i.price.per)}::text[], ${column((i) => i.price.unit)}::bigint[], ${column((i) => i.price.reserve)}::bigint[],
        ${column((i) => i.price.cache)}::bigint[], ${column((i) => i.fingerprint)}::text[], ${column((i) => i.mayReuse)}::bool[],
        ${column((i) => i.requestId)}::text[], ${column((i) => i.traceparent)}::text[]
      ) WITH ORDINALITY AS v(id, tenant_id, batch_id, prompt, model, request, priority, idempotency_key, subject,
        deadline_seconds, aged_by, price_per, unit_price, reserve, cache_price, fingerprint, may_reuse, request_id, traceparent, ord)
    ),
    earlier AS (
      SELECT k.tenant_id, k.fingerprint, s.id, s.state
      FROM (SELECT DISTINCT tenant_id, fingerprint FROM input WHERE may_reuse) k
      CROSS JOIN LATERAL (
        SELECT g.id, g.state FROM generations g
        WHERE g.tenant_id = k.tenant_id AND g.fingerprint = k.fingerprint
          AND g.served_from_id IS NULL AND g.state IN ('queued', 'running', 'succeeded')
        ORDER BY g.state = 'succeeded' DESC, g.created_at, g.id
        LIMIT 1
        ${sql.raw(lock ? 'FOR SHARE' : '')}
      ) s
    ),
    served AS (
      SELECT i.*,
        CASE WHEN NOT i.may_reuse THEN NULL WHEN e.id IS NOT NULL THEN e.id WHEN i.first_id <> i.id THEN i.first_id END AS served_from_id,
        CASE WHEN NOT i.may_reuse THEN NULL WHEN e.state = 'succeeded' THEN 'cache' WHEN e.id IS NOT NULL OR i.first_id <> i.id THEN 'joined' END AS served_from_kind
      FROM (SELECT input.*, first_value(id) OVER (PARTITION BY tenant_id, fingerprint ORDER BY ord) AS first_id FROM input) i
      LEFT JOIN earlier e ON e.tenant_id = i.tenant_id AND e.fingerprint = i.fingerprint
    ),
    decided AS (
      SELECT s.*,
        CASE WHEN EXISTS (SELECT 1 FROM credit_balances b WHERE b.tenant_id = s.tenant_id)
          THEN CASE WHEN s.served_from_kind = 'cache' THEN s.cache_price ELSE s.reserve END ELSE 0 END AS reserved
      FROM served s
    )`;
}

/**
 * Inserts generations and their first events in one statement (one round trip). A metered
 * tenant's generations reserve their price in the same statement (balance and ledger); when
 * the balance cannot cover them the statement fails (see credits.ts's isInsufficientCredit,
 * and `quoteReservation` for what it would have reserved).
 *
 * The cache lookup is part of it (`decideServing`). The row found is locked FOR SHARE until this
 * transaction ends, so it cannot end unseen: whoever ends it then sees the followers.
 * Answers each row's way of being served, in input order.
 */
export async function insertGenerations(db: Db, inputs: readonly NewGenerationInput[]): Promise<InsertedGeneration[]> {
  if (inputs.length === 0) return [];
  // Prepared (database.ts): its text is the same for any number of rows, and planning it costs more than running it.
  const { rows } = await sql<{ id: string; served_from_id: string | null; served_from_kind: ServedFromKind | null }>`${PREPARED}
    WITH ${decideServing(inputs, true)},
    inserted AS (
      INSERT INTO generations (id, tenant_id, batch_id, prompt, model, request, priority, idempotency_key, subject, deadline_at,
        dispatch_order, price_per, unit_price, reserved, cache_price, fingerprint, may_reuse, served_from_id, served_from_kind, stage,
        request_id, traceparent)
      SELECT d.id, d.tenant_id, d.batch_id, d.prompt, d.model, d.request, d.priority, d.idempotency_key, d.subject,
        now() + make_interval(secs => d.deadline_seconds), now() - make_interval(secs => d.aged_by),
        d.price_per, d.unit_price, d.reserved, d.cache_price, d.fingerprint, d.may_reuse, d.served_from_id, d.served_from_kind,
        CASE d.served_from_kind WHEN 'cache' THEN 'cache.hit' WHEN 'joined' THEN 'cache.joined' ELSE 'queued' END,
        d.request_id, d.traceparent
      FROM decided d ORDER BY d.ord
      RETURNING id, tenant_id, batch_id, subject, model, priority, reserved, served_from_id, served_from_kind
    ),
    reservations AS (
      SELECT tenant_id, sum(reserved) AS total FROM inserted WHERE reserved > 0 GROUP BY tenant_id
    ),
    debited AS (
      UPDATE credit_balances b SET available = b.available - r.total, held = b.held + r.total
      FROM reservations r WHERE b.tenant_id = r.tenant_id
      RETURNING b.tenant_id
    ),
    reserve_rows AS (
      INSERT INTO credit_ledger (tenant_id, generation_id, kind, model, available_delta, held_delta)
      SELECT tenant_id, id, 'reserve', model, -reserved, reserved FROM inserted WHERE reserved > 0
      RETURNING id
    ),
    events AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'queued', jsonb_build_object('model', model, 'priority', priority) FROM inserted
      UNION ALL
      SELECT id, tenant_id, batch_id, subject, CASE served_from_kind WHEN 'cache' THEN 'cache.hit' ELSE 'cache.joined' END,
        jsonb_build_object('generationId', served_from_id) FROM inserted WHERE served_from_id IS NOT NULL
      RETURNING id
    )
    SELECT id, served_from_id, served_from_kind FROM inserted
  `.execute(db);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return inputs.map((input) => {
    const row = byId.get(input.id);
    return { id: input.id, servedFrom: row?.served_from_id && row.served_from_kind ? { kind: row.served_from_kind, generationId: row.served_from_id } : null };
  });
}

/** What generations would reserve if they were queued now, and what their tenant has available (micro-dollars). */
export interface ReservationQuote {
  reserve: number;
  /** Of them, how many would be served from an earlier success, reserving only their cache price. */
  fromCache: number;
  available: number;
}

/**
 * What `insertGenerations` would reserve for these rows now — decided as it decides
 * (`decideServing`), without writing or locking anything — and the balance of their tenants:
 * what a refused insert tells its caller. One round trip, on the refusal's path only.
 */
export async function quoteReservation(db: Db, inputs: readonly NewGenerationInput[]): Promise<ReservationQuote> {
  if (inputs.length === 0) return { reserve: 0, fromCache: 0, available: 0 };
  const { rows } = await sql<{ reserve: string; from_cache: string; available: string }>`
    WITH ${decideServing(inputs, false)}
    SELECT coalesce(sum(reserved), 0) AS reserve, count(*) FILTER (WHERE served_from_kind = 'cache' AND reserved > 0) AS from_cache,
      (SELECT coalesce(sum(b.available), 0) FROM credit_balances b WHERE b.tenant_id IN (SELECT DISTINCT tenant_id FROM input)) AS available
    FROM decided
  `.execute(db);
  const row = rows[0];
  return { reserve: Number(row?.reserve ?? 0), fromCache: Number(row?.from_cache ?? 0), available: Number(row?.available ?? 0) };
}

export async function findGeneration(db: Db, tenantId: string, id: string): Promise<Generation | undefined> {
  return db.selectFrom('generations').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
}

/** The generation a tenant queued with this idempotency key within the last `keepSeconds`. */
export async function findByIdempotencyKey(db: Db, tenantId: string, key: string, keepSeconds: number): Promise<Generation | undefined> {
  return db
    .selectFrom('generations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('idempotency_key', '=', key)
    .where('created_at', '>', sql<Date>`now() - make_interval(secs => ${keepSeconds})`)
    .executeTakeFirst();
}

export async function listEvents(db: Db, generationId: string): Promise<GenerationEvent[]> {
  return db.selectFrom('generation_events').selectAll().where('generation_id', '=', generationId).orderBy('id').execute();
}

export async function listAssets(db: Db, generationIds: readonly string[]): Promise<Asset[]> {
  if (generationIds.length === 0) return [];
  return db
    .selectFrom('assets')
    .selectAll()
    .where('generation_id', 'in', generationIds)
    .orderBy('generation_id')
    .orderBy('output_index')
    .orderBy('kind')
    .orderBy('platform')
    .orderBy('format')
    .execute();
}

export interface ListFilter {
  tenantId: string;
  states?: readonly GenerationState[];
  batchId?: string;
  subject?: string;
  model?: string;
  createdAfter?: Date;
  createdBefore?: Date;
  /** The id of the last generation of the previous page. */
  after?: string;
  limit: number;
}

/** Newest first; `after` must be an id this tenant can see (the caller validates that). */
export async function listGenerations(db: Db, filter: ListFilter): Promise<Generation[]> {
  // A composite's parts are listed with it (status), not among the tenant's requests.
  let query = db.selectFrom('generations').selectAll().where('tenant_id', '=', filter.tenantId).where('part_of', 'is', null);
  if (filter.states && filter.states.length > 0) query = query.where('state', 'in', filter.states);
  if (filter.batchId) query = query.where('batch_id', '=', filter.batchId);
  if (filter.subject !== undefined) query = query.where('subject', '=', filter.subject);
  if (filter.model) query = query.where('model', '=', filter.model);
  if (filter.createdAfter) query = query.where('created_at', '>=', filter.createdAfter);
  if (filter.createdBefore) query = query.where('created_at', '<', filter.createdBefore);
  if (filter.after) {
    const after = filter.after;
    // Compare in SQL against the cursor row itself: JS dates would drop Postgres' microseconds.
    query = query.where(
      sql<boolean>`(created_at, id) < (SELECT c.created_at, c.id FROM generations c WHERE c.id = ${after} AND c.tenant_id = ${filter.tenantId})`,
    );
  }
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
}

export async function insertBatch(db: Db, tenantId: string, itemCount: number, key: { idempotencyKey: string; requestHash: string } | null = null): Promise<string> {
  const row = await db
    .insertInto('batches')
    .values({ tenant_id: tenantId, item_count: itemCount, idempotency_key: key?.idempotencyKey ?? null, request_hash: key?.requestHash ?? null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The batch a tenant queued with this idempotency key within the last `keepSeconds`. */
export async function findBatchByIdempotencyKey(db: Db, tenantId: string, key: string, keepSeconds: number) {
  return db
    .selectFrom('batches')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('idempotency_key', '=', key)
    .where('created_at', '>', sql<Date>`now() - make_interval(secs => ${keepSeconds})`)
    .executeTakeFirst();
}

/**
 * Frees an idempotency key held for longer than `keepSeconds` (by a generation or a batch), so
 * that it can be used for a new request: a key is remembered that long, not for ever.
 */
export async function releaseExpiredIdempotencyKey(db: Db, table: 'generations' | 'batches', tenantId: string, key: string, keepSeconds: number): Promise<void> {
  await db
    .updateTable(table)
    .set({ idempotency_key: null })
    .where('tenant_id', '=', tenantId)
    .where('idempotency_key', '=', key)
    .where('created_at', '<=', sql<Date>`now() - make_interval(secs => ${keepSeconds})`)
    .execute();
}

/** The generations of a batch in item order (ids are time-ordered, made in item order). */
export async function listBatchGenerations(db: Db, batchId: string) {
  return db.selectFrom('generations').select(['id', 'state', 'error_code', 'error_message']).where('batch_id', '=', batchId).orderBy('id').execute();
}

/**
 * Cancels every queued or running generation of a batch, with their events, in one statement;
 * answers those canceled (the running ones with a prediction need it canceled at the provider).
 */
export async function cancelBatchGenerations(db: Transaction<Database>, tenantId: string, batchId: string): Promise<{ id: string; prediction_id: string | null }[]> {
  const { rows } = await sql<{ id: string; prediction_id: string | null }>`
    WITH canceled AS (
      UPDATE generations SET state = 'canceled', stage = 'canceled', finished_at = now(), updated_at = now()
      WHERE batch_id = ${batchId} AND tenant_id = ${tenantId} AND state IN ('queued', 'running')
      RETURNING id, tenant_id, batch_id, subject, prediction_id
    ),
    events AS (
      INSERT INTO generation_events (generation_id, tenant_id, batch_id, subject, stage, data)
      SELECT id, tenant_id, batch_id, subject, 'canceled', ${JSON.stringify({ reason: 'the batch was canceled by the client' })}::jsonb FROM canceled
    )
    SELECT id, prediction_id FROM canceled ORDER BY id
  `.execute(db);
  return rows;
}

export async function findBatch(db: Db, tenantId: string, batchId: string) {
  return db.selectFrom('batches').selectAll().where('id', '=', batchId).where('tenant_id', '=', tenantId).executeTakeFirst();
}

export async function countBatchStates(db: Db, batchId: string): Promise<Record<GenerationState, number>> {
  return countStates(db, 'batch_id', batchId);
}

/** A tenant's generations per state (the ops stats). */
export async function countTenantStates(db: Db, tenantId: string): Promise<Record<GenerationState, number>> {
  return countStates(db, 'tenant_id', tenantId);
}

async function countStates(db: Db, column: 'batch_id' | 'tenant_id', value: string): Promise<Record<GenerationState, number>> {
  const rows = await db
    .selectFrom('generations')
    .select(['state', (eb) => eb.fn.countAll<string>().as('count')])
    .where(column, '=', value)
    .groupBy('state')
    .execute();
  const counts: Record<GenerationState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
  for (const row of rows) counts[row.state] = Number(row.count);
  return counts;
}

export type CancelOutcome =
  | { kind: 'canceled'; generation: Generation }
  | { kind: 'not_found' }
  | { kind: 'already_final'; state: GenerationState };

/** Cancels queued or running work; a final generation is left as it is. */
export async function cancelGeneration(db: Transaction<Database>, tenantId: string, id: string): Promise<CancelOutcome> {
  const current = await db
    .selectFrom('generations')
    .select(['state'])
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .forUpdate()
    .executeTakeFirst();
  if (!current) return { kind: 'not_found' };
  if (current.state !== 'queued' && current.state !== 'running') return { kind: 'already_final', state: current.state };
  const generation = await transition(db, {
    id,
    fromStates: ['queued', 'running'],
    set: { state: 'canceled', finished_at: new Date() },
    stage: 'canceled',
    data: { reason: 'canceled by the client' },
  });
  if (!generation) return { kind: 'not_found' };
  return { kind: 'canceled', generation };
}

// ---------------------------------------------------------------------------------------------
// Worker side: every write is fenced by the attempt number the worker was given, so a worker
// that lost its job (expiry, restart) cannot overwrite what a newer attempt wrote.
// ---------------------------------------------------------------------------------------------

export interface TransitionInput {
  id: string;
  /** When given, only this attempt may write. */
  attempt?: number;
  fromStates: readonly GenerationState[];
  set?: {
    state?: GenerationState;
    prediction_id?: string;
    prediction_deadline_at?: Date;
    create_sent_attempt?: null;
    create_sent_at?: null;
    create_settles_at?: null;
    error_code?: string | null;
    error_message?: string | null;
    finished_at?: Date;
  };
  stage: string;
  data?: Record<string, unknown>;
}

/**
 * Moves a generation to a new stage (and maybe state) and records the event, in one statement.
 * Returns the updated row, or undefined when the fence or the state check refused the write.
 */
export async function transition(db: Db, input: TransitionInput): Promise<Generation | undefined> {
  const result = await db
    .with('updated', (qb) => {
      let update = qb
        .updateTable('generations')
        .set({ ...input.set, stage: input.stage, updated_at: sql<Date>`now()` })
        .where('id', '=', input.id)
        .where('state', 'in', input.fromStates);
      if (input.attempt !== undefined) update = update.where('attempt', '=', input.attempt);
      return update.returningAll();
    })
    .with('event', (qb) =>
      qb
        .insertInto('generation_events')
        .columns(['generation_id', 'tenant_id', 'batch_id', 'subject', 'stage', 'data'])
        .expression((eb) =>
          eb
            .selectFrom('updated')
            .select([
              'updated.id',
              'updated.tenant_id',
              'updated.batch_id',
              'updated.subject',
              sql<string>`${input.stage}::text`.as('stage'),
              sql<string>`${JSON.stringify(input.data ?? {})}::jsonb`.as('data'),
            ]),
        )
        .returning('id'),
    )
    .selectFrom('updated')
    .selectAll()
    .executeTakeFirst();
  return result;
}

/**
 * Claims the next attempt for a worker: bumps the fence and marks the generation running.
 * Undefined when the generation is gone or already final (e.g. canceled while queued).
 */
export async function startAttempt(db: Db, id: string, data: Record<string, unknown>): Promise<Generation | undefined> {
  return db.transaction().execute(async (trx) => {
    const bumped = await trx
      .updateTable('generations')
      .set((eb) => ({ attempt: eb('attempt', '+', 1), started_at: sql<Date>`coalesce(started_at, now())` }))
      .where('id', '=', id)
      .where('state', 'in', ['queued', 'running'])
      .returning('attempt')
      .executeTakeFirst();
    if (!bumped) return undefined;
    return transition(trx, {
      id,
      attempt: bumped.attempt,
      fromStates: ['queued', 'running'],
      set: { state: 'running' },
      stage: 'started',
      data: { ...data, attempt: bumped.attempt },
    });
  });
}

/** Writes the assets and the success in one transaction, fenced by attempt. */
export async function completeGeneration(
  db: Kysely<Database>,
  input: {
    id: string;
    attempt: number;
    assets: Omit<NewAsset, 'generation_id' | 'tenant_id'>[];
    data: Record<string, unknown>;
    /** Runs in the same transaction once it has succeeded (its followers are served from it). */
    then?: (trx: Transaction<Database>, generation: Generation) => Promise<void>;
    /**
     * Runs in the same transaction with the keys among the assets' that retention had taken as
     * orphans (migration 0016): their objects may have been deleted since they were stored, so
     * they are stored again before this commits.
     */
    restore?: (keys: string[]) => Promise<void>;
  },
): Promise<Generation | undefined> {
  return db.transaction().execute(async (trx) => {
    const generation = await transition(trx, {
      id: input.id,
      attempt: input.attempt,
      fromStates: ['running'],
      set: { state: 'succeeded', finished_at: new Date(), error_code: null, error_message: null },
      stage: 'succeeded',
      data: input.data,
    });
    if (!generation) return undefined;
    if (input.assets.length > 0) {
      // One statement: the assets, and the orphan (or tombstone) rows of their keys taken away.
      const reclaimed = await trx
        .with('inserted', (qb) =>
          qb.insertInto('assets').values(input.assets.map((asset) => ({ ...asset, generation_id: generation.id, tenant_id: generation.tenant_id }))),
        )
        .deleteFrom('storage_orphans')
        .where('storage_key', 'in', [...new Set(input.assets.map((asset) => asset.storage_key))])
        .returning('storage_key')
        .execute();
      if (reclaimed.length > 0) await input.restore?.(reclaimed.map((row) => row.storage_key));
    }
    await input.then?.(trx, generation);
    return generation;
  });
}
