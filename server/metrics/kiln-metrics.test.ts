import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../config.ts';
import { createKilnMetrics } from './kiln-metrics.ts';

const settings = { ...loadConfig({}).metrics, snapshotTimeoutMs: 50 };
/** No reading this scrape: NaN, as prom-client spells it (Prometheus reads any case). */
const UNREAD = 'kiln_predictions_in_flight Nan';
const line = (body: string, prefix: string) => body.split('\n').find((candidate) => candidate.startsWith(prefix));

describe('kiln metrics', () => {
  it('keeps each registry its own: two apps in one process count apart', async () => {
    const one = createKilnMetrics(settings);
    const two = createKilnMetrics(settings);
    one.jobs.providerThrottled('create');
    assert.equal(line((await one.expose()).body, 'kiln_provider_throttled_total{'), 'kiln_provider_throttled_total{kind="create"} 1');
    assert.equal(line((await two.expose()).body, 'kiln_provider_throttled_total{'), undefined);
  });

  it('reads the cluster once per scrape, fills zeros, and leaves it out (counted) when the read fails or is slow', async () => {
    const metrics = createKilnMetrics(settings);
    let reads = 0;
    let mode: 'ok' | 'fail' | 'hang' = 'ok';
    metrics.readCluster(async () => {
      reads += 1;
      if (mode === 'fail') throw new Error('database away');
      if (mode === 'hang') await new Promise(() => {});
      return { queues: [{ queue: 'kiln-finish', state: 'queued', jobs: 4, oldestSeconds: 12 }], predictionsInFlight: 3, budgets: [] };
    }, [{ queue: 'kiln-finish', states: ['queued', 'active'] }]);
    const ok = (await metrics.expose()).body;
    assert.equal(reads, 1, 'one read for every cluster series');
    assert.ok(ok.includes('kiln_queue_jobs{queue="kiln-finish",state="queued"} 4'));
    assert.ok(ok.includes('kiln_queue_jobs{queue="kiln-finish",state="active"} 0'));
    assert.ok(ok.includes('kiln_queue_oldest_age_seconds{queue="kiln-finish",state="queued"} 12'));
    assert.ok(ok.includes('kiln_predictions_in_flight 3'));

    const failing = createKilnMetrics(settings);
    failing.readCluster(async () => {
      mode = 'fail';
      throw new Error('database away');
    }, []);
    const failed = (await failing.expose()).body;
    assert.equal(line(failed, 'kiln_predictions_in_flight '), UNREAD);
    assert.equal(line(failed, 'kiln_queue_jobs{'), undefined);
    assert.equal(line((await failing.expose()).body, 'kiln_metrics_snapshot_errors_total'), 'kiln_metrics_snapshot_errors_total 1', 'counted once per scrape (shown by the next)');

    const slow = createKilnMetrics(settings);
    slow.readCluster(() => new Promise(() => {}), []);
    assert.equal(line((await slow.expose()).body, 'kiln_predictions_in_flight '), UNREAD, 'a scrape does not wait for a hanging database');
  });

  it('labels tenants only when turned on', async () => {
    const off = createKilnMetrics(settings);
    off.api.generationsQueued([{ tenantId: 'acme', servedFrom: 'own' }]);
    assert.equal(line((await off.expose()).body, 'kiln_generations_queued_total{'), 'kiln_generations_queued_total{served_from="own"} 1');
    const on = createKilnMetrics({ ...settings, tenantLabels: true });
    on.api.generationsQueued([{ tenantId: 'acme', servedFrom: 'cache' }]);
    on.jobs.generationSucceeded({ tenantId: 'acme', servedFrom: 'cache', seconds: 1, chargedMicroUsd: 300 });
    const body = (await on.expose()).body;
    assert.equal(line(body, 'kiln_generations_queued_total{'), 'kiln_generations_queued_total{served_from="cache",tenant="acme"} 1');
    assert.equal(line(body, 'kiln_credits_charged_usd_total{'), 'kiln_credits_charged_usd_total{tenant="acme"} 0.0003');
  });
});
