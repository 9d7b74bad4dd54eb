import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

// The simulator's data folder, when it has one:
//   LOCK           the pid of the simulator using it (one at a time: two would corrupt the journal)
//   account.json   the API token and webhook secret it generated, so they outlive a restart as an
//                  account's do (mode 0600)
//   journal.jsonl  predictions and uploaded files (see journal.ts)
//   files/         the uploaded files' bytes
//   inputs/        predictions' input images, by SHA-256 (see input-store.ts)

export interface DataFolder {
  readonly journalPath: string;
  readonly filesDir: string;
  /** Gives the folder up (removes LOCK). */
  release(): void;
}

const accountSchema = z.object({ apiToken: z.string().min(1).optional(), webhookSecret: z.string().startsWith('whsec_').optional() });
export type AccountSecrets = z.infer<typeof accountSchema>;

const accountPath = (dir: string): string => path.join(dir, 'account.json');

/** The secrets generated in an earlier run, if any (a missing or unreadable file gives none). */
export function readAccountSecrets(dir: string): AccountSecrets {
  try {
    const parsed = accountSchema.safeParse(JSON.parse(readFileSync(accountPath(dir), 'utf8')));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}

/** Another live simulator holds the data folder: one folder keeps one simulator's predictions. */
export class DataFolderInUseError extends Error {
  override name = 'DataFolderInUseError';
  readonly holderPid: number;
  constructor(dir: string, holderPid: number, lockPath: string) {
    super(`Simulator data folder ${dir} is in use by process ${holderPid} (remove ${lockPath} if that is not a simulator)`);
    this.holderPid = holderPid;
  }
}

/** Takes the folder for this process, creating it if needed; throws DataFolderInUseError if another live simulator holds it. */
export function openDataFolder(dir: string, generated: AccountSecrets): DataFolder {
  mkdirSync(dir, { recursive: true });
  const lockPath = path.join(dir, 'LOCK');
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
  } catch (error) {
    if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
    const holder = Number(readFileSync(lockPath, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new DataFolderInUseError(dir, holder, lockPath);
    }
    // Left behind by a simulator that was killed: take it over.
    writeFileSync(lockPath, String(process.pid));
  }
  const known = readAccountSecrets(dir);
  const merged = { ...generated, ...known };
  if (merged.apiToken !== known.apiToken || merged.webhookSecret !== known.webhookSecret) {
    writeFileSync(accountPath(dir), `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
  }
  return {
    journalPath: path.join(dir, 'journal.jsonl'),
    filesDir: path.join(dir, 'files'),
    release: () => rmSync(lockPath, { force: true }),
  };
}
