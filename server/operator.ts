// The operator's admin token (KILN_ADMIN_TOKEN): who may call `admin.*`. It lives in the
// configuration, not the database, so no tenant's key can become one, and the operator can
// change it with a restart. Compared in constant time, as digests (equal length whatever is sent).
import { createHash, timingSafeEqual } from 'node:crypto';

export function createOperatorCheck(adminToken: string | undefined): (credential: string | undefined) => boolean {
  if (adminToken === undefined) return () => false;
  const expected = createHash('sha256').update(adminToken).digest();
  return (credential) => credential !== undefined && timingSafeEqual(createHash('sha256').update(credential).digest(), expected);
}
