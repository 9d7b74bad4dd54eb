// Where the CPU goes during a run: the API process, PostgreSQL's processes, the load generator
// (this process), and how busy the whole machine was. With API, database and load generator on
// 2 cores, "CPU per request" of each part says which one to make cheaper. Linux only (/proc);
// elsewhere, or with a remote DATABASE_URL, the figures are left out.
import { readFileSync } from 'node:fs';
import type pg from 'pg';

/** USER_HZ: /proc reports CPU time in ticks of 1/100 s on Linux. */
export const TICK_MS = 10;

export interface CpuSnapshot {
  machine: { busyTicks: number; totalTicks: number } | undefined;
  /** Ticks per PostgreSQL process id (postmaster, backends, background processes). */
  postgres: Map<number, number>;
  api: number | undefined;
  self: NodeJS.CpuUsage;
}

export interface CpuUse {
  /** Machine-wide busy share over the interval, 0–1. */
  machineBusy: number | undefined;
  /** CPU milliseconds over the interval. */
  apiMs: number | undefined;
  postgresMs: number | undefined;
  loadGeneratorMs: number;
}

/** CPU ticks (user + system) a process has used so far; undefined once it is gone or off Linux. */
export function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function machineTicks(): CpuSnapshot['machine'] {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = values.reduce((sum, value) => sum + value, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
    return { busyTicks: total - idle, totalTicks: total };
  } catch {
    return undefined;
  }
}

/** PostgreSQL's processes, found through pg_stat_activity (only if they run on this machine). */
async function postgresTicks(admin: pg.Client): Promise<Map<number, number>> {
  const ticks = new Map<number, number>();
  const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity');
  const pids = new Set(rows.map((row) => row.pid));
  const firstPid = rows[0]?.pid;
  const postmaster = firstPid === undefined ? undefined : parentPid(firstPid);
  if (postmaster !== undefined && postmaster > 1) pids.add(postmaster);
  for (const pid of pids) {
    const value = processTicks(pid);
    if (value !== undefined) ticks.set(pid, value);
  }
  return ticks;
}

export async function cpuSnapshot(admin: pg.Client, apiPid: number | undefined): Promise<CpuSnapshot> {
  return {
    machine: machineTicks(),
    postgres: await postgresTicks(admin),
    api: apiPid === undefined ? undefined : processTicks(apiPid),
    self: process.cpuUsage(),
  };
}

export function cpuUse(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  // Processes born during the interval (pool connections) count from zero; ones that exited are lost.
  let postgresTicksUsed = 0;
  for (const [pid, ticks] of after.postgres) postgresTicksUsed += ticks - (before.postgres.get(pid) ?? 0);
  const machine =
    before.machine && after.machine && after.machine.totalTicks > before.machine.totalTicks
      ? (after.machine.busyTicks - before.machine.busyTicks) / (after.machine.totalTicks - before.machine.totalTicks)
      : undefined;
  return {
    machineBusy: machine,
    apiMs: before.api !== undefined && after.api !== undefined ? (after.api - before.api) * TICK_MS : undefined,
    postgresMs: after.postgres.size > 0 ? postgresTicksUsed * TICK_MS : undefined,
    loadGeneratorMs: (after.self.user - before.self.user + after.self.system - before.self.system) / 1000,
  };
}
