import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** The named secret, created (32 random bytes) by whichever process asks first. */
export async function getOrCreateSecret(db: Kysely<Database>, name: string): Promise<Buffer> {
  await db.insertInto('kiln_secrets').values({ name, value: randomBytes(32) }).onConflict((conflict) => conflict.column('name').doNothing()).execute();
  const row = await db.selectFrom('kiln_secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}

/** The value stored under `name`: `value` if none was, else the one stored first (by any process). */
export async function keepFirstValue(db: Kysely<Database>, name: string, value: Buffer): Promise<Buffer> {
  await db.insertInto('kiln_secrets').values({ name, value }).onConflict((conflict) => conflict.column('name').doNothing()).execute();
  const row = await db.selectFrom('kiln_secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}
