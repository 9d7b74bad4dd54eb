// Queries on generations and their events. Every state change writes its event row in the
// same statement or transaction, so the event log never disagrees with the row.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Asset, Database, Db, Generation, GenerationEvent, GenerationRequestJson, GenerationState, NewAsset } from './schema.ts';

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
  /** How its model is billed, the price of one image or GPU second, and what it reserves if its tenant is metered (micro-dollars; see credits.ts). */
  price: { per: 'image' | 'gpu-second'; unit: number; reserve: number };
}

/**
 * Inserts generations and their 'queued' events in one statement (one round trip). A metered
 * tenant's generations reserve their price in the same statement (balance and ledger); when
 * the balance cannot cover them the statement fails (see credits.ts's isInsufficientCredit).
 */
export async function insertGenerations(db: Db, inputs: readonly NewGenerationInput[]): Promise<void> {
  if (inputs.length === 0) return;
  await db
    .with('inserted', (qb) =>
      qb
        .insertInto('generations')
        .values(
          inputs.map((input) => ({
            id: input.id,
            tenant_id: input.tenantId,
            batch_id: input.batchId,
            prompt: input.prompt,
            model: input.model,
            request: JSON.stringify(input.request),
            priority: input.priority,
            idempotency_key: input.idempotencyKey,
            subject: input.subject,
            deadline_at: input.deadlineSeconds === null ? null : sql<Date>`now() + make_interval(secs => ${input.deadlineSeconds})`,
            dispatch_order: sql<Date>`now() - make_interval(secs => ${input.agedBySeconds})`,
            price_per: input.price.per,
            unit_price: input.price.unit,
            reserved: sql<string>`(CASE WHEN EXISTS (SELECT 1 FROM credit_balances WHERE tenant_id = ${input.tenantId}) THEN ${input.price.reserve}::bigint ELSE 0 END)`,
          })),
        )
        .returning(['id', 'tenant_id', 'batch_id', 'subject', 'model', 'priority', 'reserved']),
    )
    // kysely writes a raw CTE as given: the parentheses are ours.
    .with('reservations', () => sql`(
      SELECT tenant_id, sum(reserved) AS total FROM inserted WHERE reserved > 0 GROUP BY tenant_id
    )`)
    .with('debited', () => sql`(
      UPDATE credit_balances b SET available = b.available - r.total, held = b.held + r.total
      FROM reservations r WHERE b.tenant_id = r.tenant_id
      RETURNING b.tenant_id
    )`)
    .with('reserve_rows', () => sql`(
      INSERT INTO credit_ledger (tenant_id, generation_id, kind, model, available_delta, held_delta)
      SELECT tenant_id, id, 'reserve', model, -reserved, reserved FROM inserted WHERE reserved > 0
      RETURNING id
    )`)
    .insertInto('generation_events')
    .columns(['generation_id', 'tenant_id', 'batch_id', 'subject', 'stage', 'data'])
    .expression((eb) =>
      eb
        .selectFrom('inserted')
        .select([
          'inserted.id',
          'inserted.tenant_id',
          'inserted.batch_id',
          'inserted.subject',
          sql.lit('queued').as('stage'),
          sql<string>`jsonb_build_object('model', inserted.model, 'priority', inserted.priority)`.as('data'),
        ]),
    )
    .execute();
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
  let query = db.selectFrom('generations').selectAll().where('tenant_id', '=', filter.tenantId);
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
  input: { id: string; attempt: number; assets: Omit<NewAsset, 'generation_id' | 'tenant_id'>[]; data: Record<string, unknown> },
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
      await trx
        .insertInto('assets')
        .values(input.assets.map((asset) => ({ ...asset, generation_id: generation.id, tenant_id: generation.tenant_id })))
        .execute();
    }
    return generation;
  });
}
