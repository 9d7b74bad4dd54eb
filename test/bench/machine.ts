// What every benchmark report says about where it ran.
import os from 'node:os';
import type { BenchDatabase } from './database.ts';
import { round } from './table.ts';

export interface MachineDescription {
  /** For the JSON report's conditions. */
  conditions: { cpus: number; cpuModel: string; loadAverageBefore: number; node: string; postgres: BenchDatabase['server'] };
  /** For the table's heading: "2 cores, Node v24…, PostgreSQL 18.4 (embedded, fsync on)". */
  heading: string;
}

export function describeMachine(server: BenchDatabase['server'], loadAverageBefore: number): MachineDescription {
  const cpus = os.cpus();
  const durability = server.fsync === 'on' && server.synchronousCommit === 'on' ? 'fsync on' : `fsync ${server.fsync}, synchronous_commit ${server.synchronousCommit}`;
  return {
    conditions: { cpus: cpus.length, cpuModel: cpus[0]?.model.trim() ?? 'unknown', loadAverageBefore: round(loadAverageBefore), node: process.version, postgres: server },
    heading: `${cpus.length} cores, Node ${process.version}, PostgreSQL ${server.version} (${server.source}, ${durability})`,
  };
}
