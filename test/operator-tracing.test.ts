// What an operator does to see traces, done as the README says: a setup file that registers an
// OpenTelemetry SDK, loaded with `node --import`, in front of an API process and a worker process
// on one database. Their spans, exported when each process stops, form one trace per generation.
// Their logs on a pipe are JSON lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createKilnClient } from '../client-sdk/index.ts';
import { createTestDatabase } from './support/kiln.ts';
import { startKilnProcess, type KilnProcess } from './support/worker-process.ts';

const setup = path.join(import.meta.dirname, 'fixtures', 'tracing', 'setup.ts');
const cli = path.join(import.meta.dirname, '..', 'server', 'cli.ts');

interface ExportedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, unknown>;
}

describe('an operator turns tracing on', () => {
  it('with an SDK loaded by --import, API and worker processes export one linked trace', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'kiln-traces-'));
    const databaseUrl = await createTestDatabase();
    const files = { api: path.join(folder, 'api.jsonl'), worker: path.join(folder, 'worker.jsonl') };
    const processes: KilnProcess[] = [];
    try {
      const start = (role: 'api' | 'worker') =>
        startKilnProcess({
          role,
          dataDir: folder,
          nodeOptions: ['--import', setup],
          stderr: 'pipe',
          env: { DATABASE_URL: databaseUrl, KILN_LOG_LEVEL: 'info', KILN_WEBHOOKS: 'off', KILN_SIMULATOR_LATENCY_MS: '50-150', KILN_TEST_TRACE_FILE: files[role] },
        });
      const api = await start('api');
      processes.push(api);
      await api.ready;
      const worker = await start('worker');
      processes.push(worker);
      await worker.ready;

      const created = spawnSync(process.execPath, [cli, 'keys', 'create', '--tenant', 'traced'], { env: { ...process.env, DATABASE_URL: databaseUrl, KILN_LOG_LEVEL: 'warn' }, encoding: 'utf8' });
      const apiKey = /(kiln_sk_\S+)/.exec(created.stdout)?.[1];
      assert.ok(apiKey, created.stderr);
      const client = createKilnClient({ url: api.url() ?? '', apiKey });
      let id: string;
      try {
        ({ id } = await client.generate({ prompt: 'traced across processes', platforms: ['thumbnail'] }));
        assert.equal((await client.waitFor(id, { timeoutMs: 60_000 })).state, 'succeeded');
      } finally {
        client.close();
      }
      // Stopping exports what the SDK still holds (Kiln flushes the registered provider).
      assert.equal(await worker.stop(), 0);
      assert.equal(await api.stop(), 0);

      const read = async (file: string) => (await readFile(file, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as ExportedSpan);
      const apiSpans = await read(files.api);
      const workerSpans = await read(files.worker);
      const call = apiSpans.find((span) => span.name === 'trpc generate' && span.attributes['kiln.generation_id'] === id);
      assert.ok(call, 'the API exported the call');
      const trace = workerSpans.filter((span) => span.traceId === call.traceId);
      const phase = (name: string) => trace.find((span) => span.name === name);
      for (const name of ['job create', 'job poll', 'job finish']) assert.equal(phase(name)?.parentSpanId, call.spanId, `${name} is a child of the call`);
      assert.equal(trace.find((span) => span.name === 'provider create')?.parentSpanId, phase('job create')?.spanId);
      for (const name of ['provider download', 'render', 'store']) assert.equal(trace.find((span) => span.name === name)?.parentSpanId, phase('job finish')?.spanId, name);

      // On a pipe, the logs are JSON lines; the call's line carries the trace id the SDK gave it.
      const lines = api.logs().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      const callLine = lines.find((line) => line.msg === 'call' && line.procedure === 'generate');
      assert.equal(callLine?.traceId, call.traceId);
      assert.equal(callLine?.generationId, id);
    } finally {
      await Promise.all(processes.map((child) => child.stop()));
      await rm(folder, { recursive: true, force: true });
    }
  });
});
