import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { Migrator, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely/migration';
import * as initial from './migrations/0001-initial.ts';
import * as uniqueTenantNames from './migrations/0002-unique-tenant-names.ts';
import * as eventFeed from './migrations/0003-event-feed.ts';
import * as secretsAndQueueLanes from './migrations/0004-secrets-and-queue-lanes.ts';
import * as providerRateLimits from './migrations/0005-provider-rate-limits.ts';
import * as twoPhaseProviderWork from './migrations/0006-two-phase-provider-work.ts';
import * as requiredDeadlinesAndPollNumbers from './migrations/0007-required-deadlines-and-poll-numbers.ts';
import * as queueWaitApartFromRunTime from './migrations/0008-queue-wait-apart-from-run-time.ts';
import * as subjects from './migrations/0009-subjects.ts';
import * as dispatch from './migrations/0010-dispatch.ts';
import * as dispatchAtScale from './migrations/0011-dispatch-at-scale.ts';
import * as requestLimits from './migrations/0012-request-limits.ts';
import * as credits from './migrations/0013-credits.ts';
import * as cacheAndCoalescing from './migrations/0014-cache-and-coalescing.ts';
import * as batchKeys from './migrations/0015-batch-keys.ts';
import * as retention from './migrations/0016-retention.ts';
import * as requestCorrelation from './migrations/0017-request-correlation.ts';
import * as imageSources from './migrations/0018-image-sources.ts';
import * as providerFiles from './migrations/0019-provider-files.ts';
import * as outputIndex from './migrations/0020-output-index.ts';
import * as followersShareUnusableSource from './migrations/0021-followers-share-unusable-source.ts';
import * as providerFilesExpiry from './migrations/0022-provider-files-expiry.ts';
import * as chainsAndParts from './migrations/0023-chains-and-parts.ts';

/** Migrations live in code (not discovered on disk) so they ship with the build and run in order. */
const migrations = {
  '0001-initial': initial,
  '0002-unique-tenant-names': uniqueTenantNames,
  '0003-event-feed': eventFeed,
  '0004-secrets-and-queue-lanes': secretsAndQueueLanes,
  '0005-provider-rate-limits': providerRateLimits,
  '0006-two-phase-provider-work': twoPhaseProviderWork,
  '0007-required-deadlines-and-poll-numbers': requiredDeadlinesAndPollNumbers,
  '0008-queue-wait-apart-from-run-time': queueWaitApartFromRunTime,
  '0009-subjects': subjects,
  '0010-dispatch': dispatch,
  '0011-dispatch-at-scale': dispatchAtScale,
  '0012-request-limits': requestLimits,
  '0013-credits': credits,
  '0014-cache-and-coalescing': cacheAndCoalescing,
  '0015-batch-keys': batchKeys,
  '0016-retention': retention,
  '0017-request-correlation': requestCorrelation,
  '0018-image-sources': imageSources,
  '0019-provider-files': providerFiles,
  '0020-output-index': outputIndex,
  '0021-followers-share-unusable-source': followersShareUnusableSource,
  '0022-provider-files-expiry': providerFilesExpiry,
  '0023-chains-and-parts': chainsAndParts,
} satisfies Record<string, Migration>;

const inCodeProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Brings the schema up to date. Safe to call from several processes at once:
 * kysely's migrator takes a lock for the duration.
 */
export function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  return migrate(db, (migrator) => migrator.migrateToLatest());
}

/** Brings the schema to exactly `name` (up or down): for tests of a migration against the rows before it. */
export function migrateTo(db: Kysely<Database>, name: keyof typeof migrations & string): Promise<string[]> {
  return migrate(db, (migrator) => migrator.migrateTo(name));
}

/** This code's migrations that the database has not run (none: the schema is current). */
export async function pendingMigrations(db: Kysely<Database>): Promise<string[]> {
  const known = await migratorFor(db).getMigrations();
  return known.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name);
}

function migratorFor(db: Kysely<Database>): Migrator {
  return new Migrator({ db, provider: inCodeProvider, migrationTableName: 'kiln_migrations', migrationLockTableName: 'kiln_migrations_lock' });
}

async function migrate(db: Kysely<Database>, step: (migrator: Migrator) => Promise<MigrationResultSet>): Promise<string[]> {
  const migrator = migratorFor(db);
  const { error, results = [] } = await step(migrator);
  const failed = results.find((result) => result.status === 'Error');
  if (error !== undefined || failed !== undefined) {
    const cause = error instanceof Error ? error.message : String(error ?? '');
    throw new MigrationError(`migration ${failed?.migrationName ?? ''} failed: ${cause}`.trim(), { cause: error });
  }
  return results.filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
