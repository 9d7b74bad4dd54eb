// The alert rules and the dashboard shipped in server/monitoring/: promtool checks and unit-tests
// the rules; every series they name is one Kiln exposes; and a real Prometheus on loopback scrapes
// a running Kiln, evaluates every rule without error, and sees an alert go pending when the
// provider's breaker opens. Needs Debian's `prometheus` package (CI installs it); without its
// binaries those parts are skipped, saying so.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { loadConfig } from '../server/config.ts';
import { createKilnMetrics } from '../server/metrics/kiln-metrics.ts';
import { startKiln } from './support/kiln.ts';
import { freePort } from './support/ports.ts';
import { until } from './support/until.ts';

const MONITORING = path.join(import.meta.dirname, '..', 'server', 'monitoring');
const ALERTS = path.join(MONITORING, 'alerts.yml');
const DASHBOARD = path.join(MONITORING, 'grafana-dashboard.json');
const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';
const missing = (binary: string) => (existsSync(binary) ? false : `${binary} is not installed (apt-get install prometheus); skipped`);

interface Dashboard {
  panels: { type: string; title: string; targets?: { expr: string }[] }[];
}

async function dashboardExpressions(): Promise<{ title: string; expr: string }[]> {
  const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ title: panel.title, expr: target.expr })));
}

async function alertExpressions(): Promise<string[]> {
  // The rules file is YAML; its expressions are the `expr:` entries (one line, or a `|` block).
  const text = await readFile(ALERTS, 'utf8');
  return [...text.matchAll(/^\s+expr: (\|\n(?:\s{10,}.*\n)+|.*)$/gm)].map((match) => match[1]!.replace(/^\|\n/, '').trim());
}

/** Every series name Kiln's registry can expose (histograms as their _bucket, _sum and _count). */
async function exposedNames(): Promise<Set<string>> {
  const { body } = await createKilnMetrics(loadConfig({}).metrics).expose();
  const names = new Set<string>();
  for (const [, name, type] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    else names.add(name!);
  }
  return names;
}

describe('the alert rules and the dashboard', () => {
  it('name only series that Kiln exposes', async () => {
    const names = await exposedNames();
    const expressions = [...(await alertExpressions()), ...(await dashboardExpressions()).map((entry) => entry.expr)];
    assert.ok(expressions.length > 30, `found ${expressions.length} expressions`);
    const unknown = expressions.flatMap((expr) => [...expr.matchAll(/\bkiln_[a-z0-9_]+/g)].map((match) => match[0]).filter((name) => !names.has(name)));
    assert.deepEqual(unknown, []);
  });

  it('are valid rules that fire as their unit tests expect (promtool)', { skip: missing(PROMTOOL) }, async () => {
    const run = promisify(execFile);
    const checked = await run(PROMTOOL, ['check', 'rules', ALERTS]);
    assert.match(checked.stdout, /SUCCESS: \d+ rules found/);
    const tested = await run(PROMTOOL, ['test', 'rules', path.join(MONITORING, 'alerts.test.yml')]);
    assert.match(tested.stdout, /SUCCESS/);
  });
});

describe('a real Prometheus scraping a running Kiln', () => {
  it('scrapes it, evaluates every rule and every dashboard query, and sees the breaker alert go pending', { skip: missing(PROMETHEUS) }, async () => {
    const kiln = await startKiln({ env: { KILN_PROVIDER_BREAKER_FAILURES: '2', KILN_PROVIDER_BREAKER_HALF_OPEN_MS: '600000', KILN_PROVIDER_MAX_ATTEMPTS: '1' } });
    const folder = await mkdtemp(path.join(tmpdir(), 'kiln-prometheus-'));
    let prometheus: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();
    const killPrometheus = () => prometheus?.kill('SIGKILL');
    process.once('exit', killPrometheus); // never left running, even if this test process dies
    try {
      const target = new URL(kiln.url).host;
      await writeFile(
        path.join(folder, 'prometheus.yml'),
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          `rule_files: [${JSON.stringify(ALERTS)}]`,
          'scrape_configs:',
          `  - { job_name: kiln, metrics_path: /metrics, static_configs: [{ targets: [${JSON.stringify(target)}] }] }`,
          '',
        ].join('\n'),
      );
      const port = await freePort();
      const api = `http://127.0.0.1:${port}/api/v1`;
      let log = '';
      prometheus = spawn(PROMETHEUS, [`--config.file=${path.join(folder, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(folder, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      prometheus.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
      const child = prometheus;
      exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const query = async (promql: string) => {
        const response = await fetch(`${api}/query?${new URLSearchParams({ query: promql })}`).catch(() => undefined);
        return response ? ((await response.json()) as { status: string; error?: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } }) : undefined;
      };

      // Ready first: while it replays its write-ahead log, Prometheus answers 503 in plain text.
      await until(async () => {
        if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
        const ready = await fetch(`http://127.0.0.1:${port}/-/ready`).catch(() => undefined);
        return ready?.ok ? true : undefined;
      }, 60_000);

      // Scraped: a series of Kiln's, with the job's labels on it.
      const scraped = await until(async () => {
        if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
        const answer = await query('kiln_provider_breaker_state{job="kiln", state="closed"}');
        return answer?.data.result.length === 1 ? answer.data.result[0] : undefined;
      }, 60_000);
      assert.equal(scraped.value[1], '1');
      assert.equal(scraped.metric.instance, target);

      // Every rule evaluates without error.
      const rules = await until(async () => {
        const answer = (await (await fetch(`${api}/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
        const all = answer.data.groups.flatMap((group) => group.rules);
        return all.length > 0 && all.every((rule) => rule.health !== 'unknown') ? all : undefined;
      });
      assert.deepEqual(rules.filter((rule) => rule.health !== 'ok').map((rule) => `${rule.name}: ${rule.lastError}`), []);

      // Every dashboard query is valid PromQL (Grafana's interval variable as a plain window).
      for (const { title, expr } of await dashboardExpressions()) {
        const answer = await query(expr.replaceAll('$__rate_interval', '1m'));
        assert.equal(answer?.status, 'success', `${title}: ${expr}: ${answer?.error}`);
      }

      // The provider fails; the breaker opens; the alert goes pending (it fires after its `for`).
      kiln.app.simulator?.faults.set({ http5xx: { count: 100_000, status: 503 } });
      await kiln.client.generate({ prompt: 'the provider is down', platforms: ['thumbnail'] });
      const alert = await until(async () => {
        const answer = (await (await fetch(`${api}/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
        return answer.data.alerts.find((candidate) => candidate.labels.alertname === 'KilnProviderBreakerOpen');
      }, 60_000);
      assert.equal(alert.state, 'pending');
      assert.equal(alert.labels.instance, target);
      assert.equal(alert.labels.severity, 'critical');

      prometheus.kill('SIGTERM');
      await exited;
    } finally {
      if (prometheus?.exitCode === null && prometheus.signalCode === null) killPrometheus();
      await exited;
      process.off('exit', killPrometheus);
      await kiln.stop();
      await rm(folder, { recursive: true, force: true });
    }
  });
});
