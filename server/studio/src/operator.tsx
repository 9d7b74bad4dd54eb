// The operator's window on the whole system, with the admin token (KILN_ADMIN_TOKEN): work in
// progress, queue depth by state, throughput by minute, the provider budgets' use and the
// breaker, predictions in flight, and each tenant's share of the provider. Read every few
// seconds while shown (a dashboard's figures, not a generation's stages).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { connect, describeError, type Overview } from './api.ts';
import { keepAdminToken, storedAdminToken } from './session.ts';
import { Figure } from './usage.tsx';
import { FieldError } from './ui.tsx';

const REFRESH_MS = 3000;

export function Operator() {
  const [token, setToken] = useState(storedAdminToken);
  if (!token) return <OperatorSignIn onToken={(value) => (keepAdminToken(value), setToken(value))} />;
  return <OperatorView token={token} onSignOut={() => (keepAdminToken(undefined), setToken(undefined))} />;
}

function OperatorSignIn({ onToken }: { onToken: (token: string) => void }) {
  const [value, setValue] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setProblem(undefined);
    const admin = connect(value.trim());
    try {
      await admin.trpc.admin.ops.overview.query();
      onToken(value.trim());
    } catch (error) {
      setProblem(describeError(error).message);
    } finally {
      admin.close();
      setBusy(false);
    }
  };
  return (
    <section class="panel narrow" aria-labelledby="operator-title">
      <h2 id="operator-title">Operator</h2>
      <p>The operator view shows every tenant's work and the provider. It takes the admin token, the server's <code>KILN_ADMIN_TOKEN</code>; it is kept in this browser only.</p>
      <form onSubmit={(event) => void submit(event)} noValidate>
        <div class="field">
          <label for="admin-token">Admin token</label>
          <input id="admin-token" type="password" autoComplete="off" value={value} onInput={(event) => setValue(event.currentTarget.value)} aria-invalid={problem ? true : undefined} aria-describedby={problem ? 'error-admin-token' : undefined} />
          <FieldError id="error-admin-token" messages={problem ? [problem] : undefined} />
        </div>
        <button type="submit" class="primary" disabled={busy || value.trim() === ''}>
          {busy ? 'Checking…' : 'Open the operator view'}
        </button>
      </form>
    </section>
  );
}

interface Sample {
  at: number;
  granted: Map<string, number>;
}

function OperatorView({ token, onSignOut }: { token: string; onSignOut: () => void }) {
  const admin = useMemo(() => connect(token), [token]);
  const [overview, setOverview] = useState<Overview | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [rates, setRates] = useState<Map<string, number>>(new Map());
  const previous = useRef<Sample | undefined>(undefined);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      try {
        const next = await admin.trpc.admin.ops.overview.query();
        if (stopped) return;
        const sample: Sample = { at: new Date(next.at).getTime(), granted: new Map(next.provider.budgets.map((budget) => [budget.name, budget.granted])) };
        const before = previous.current;
        if (before && sample.at > before.at) {
          const minutes = (sample.at - before.at) / 60_000;
          setRates(new Map([...sample.granted].map(([name, granted]) => [name, Math.max(0, granted - (before.granted.get(name) ?? granted)) / minutes])));
        }
        previous.current = sample;
        setOverview(next);
        setProblem(undefined);
      } catch (error) {
        if (!stopped) setProblem(describeError(error).message);
      }
      if (!stopped) timer = setTimeout(() => void read(), REFRESH_MS);
    };
    void read();
    return () => {
      stopped = true;
      clearTimeout(timer);
      admin.close();
    };
  }, [admin]);

  return (
    <section class="panel" aria-labelledby="operator-title">
      <div class="panel-head">
        <h2 id="operator-title">Operator</h2>
        <button type="button" class="link" onClick={onSignOut}>
          Forget the admin token
        </button>
      </div>
      {problem && (
        <p role="alert" class="problem">
          {problem}
        </p>
      )}
      {!overview && !problem && <p>Reading…</p>}
      {overview && <OverviewPanels overview={overview} rates={rates} />}
    </section>
  );
}

function OverviewPanels({ overview, rates }: { overview: Overview; rates: Map<string, number> }) {
  const { generations, provider } = overview;
  const queues = [...new Set(overview.queues.map((depth) => depth.queue))].sort();
  const depth = (queue: string, state: string) => overview.queues.find((entry) => entry.queue === queue && entry.state === state);
  return (
    <>
      <div class="figures">
        <Figure label="Waiting for a create slot" value={String(generations.waiting)} />
        <Figure label="Dispatched" value={String(generations.dispatched)} />
        <Figure label="Running" value={String(generations.running)} />
        <Figure label="Predictions in flight" value={String(generations.atProvider)} note="at the provider now" />
        <Figure label="Circuit breaker" value={provider.breaker ?? 'n/a'} note={provider.breaker === null ? 'this process runs no worker' : provider.breaker === 'closed' ? 'calls go through' : 'calls wait in the queue'} />
      </div>

      <h3>Throughput, last {overview.windowMinutes} minutes</h3>
      <ThroughputChart throughput={overview.throughput} />

      <h3>Provider budgets</h3>
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">Provider budgets: their use and state</caption>
          <thead>
            <tr>
              <th scope="col">Budget</th>
              <th scope="col">Use now</th>
              <th scope="col" class="num">Granted</th>
              <th scope="col" class="num">Next slot</th>
              <th scope="col" class="num">Paused</th>
              <th scope="col" class="num">429s</th>
            </tr>
          </thead>
          <tbody>
            {provider.budgets.map((budget) => {
              const rate = rates.get(budget.name);
              return (
                <tr key={budget.name}>
                  <th scope="row">{budget.name}</th>
                  <td>
                    <meter min={0} max={budget.perMinute} value={rate ?? 0} aria-label={`${budget.name} use`} />{' '}
                    {rate === undefined ? 'measuring…' : `${Math.round(rate)} of ${budget.perMinute}/min`}
                  </td>
                  <td class="num">{budget.granted}</td>
                  <td class="num">{budget.waitMs} ms</td>
                  <td class="num">{budget.pausedForMs > 0 ? `${Math.ceil(budget.pausedForMs / 1000)} s` : 'no'}</td>
                  <td class="num">{budget.throttled}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <h3>Each tenant's share of the provider</h3>
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">Tenants by their share of the provider's work now and over the last {overview.windowMinutes} minutes</caption>
          <thead>
            <tr>
              <th scope="col">Tenant</th>
              <th scope="col">Tier</th>
              <th scope="col">Share</th>
              <th scope="col" class="num">Waiting</th>
              <th scope="col" class="num">In progress</th>
              <th scope="col" class="num">At the provider</th>
              <th scope="col" class="num">Ended ({overview.windowMinutes} min)</th>
            </tr>
          </thead>
          <tbody>
            {overview.tenants.length === 0 && (
              <tr>
                <td colSpan={7}>No provider work in the last {overview.windowMinutes} minutes.</td>
              </tr>
            )}
            {overview.tenants.map((tenant) => (
              <tr key={tenant.tenantId}>
                <th scope="row">{tenant.name}</th>
                <td>{tenant.tier}</td>
                <td>
                  <span class="share" aria-hidden="true">
                    <span style={{ width: `${Math.round(tenant.share * 100)}%` }} />
                  </span>{' '}
                  {Math.round(tenant.share * 100)} %
                </td>
                <td class="num">{tenant.waiting}</td>
                <td class="num">{tenant.inProgress}</td>
                <td class="num">{tenant.atProvider}</td>
                <td class="num">{tenant.endedRecently}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h3>Queue depth by state</h3>
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">Jobs of each queue by state</caption>
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col" class="num">Queued</th>
              <th scope="col" class="num">Scheduled</th>
              <th scope="col" class="num">Active</th>
              <th scope="col" class="num">Oldest</th>
            </tr>
          </thead>
          <tbody>
            {queues.map((queue) => {
              const oldest = Math.max(...['queued', 'active'].map((state) => depth(queue, state)?.oldestSeconds ?? 0));
              return (
                <tr key={queue}>
                  <th scope="row">{queue}</th>
                  <td class="num">{depth(queue, 'queued')?.jobs ?? 0}</td>
                  <td class="num">{depth(queue, 'scheduled')?.jobs ?? 0}</td>
                  <td class="num">{depth(queue, 'active')?.jobs ?? 0}</td>
                  <td class="num">{oldest > 0 ? `${oldest.toFixed(1)} s` : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** Generations ended per minute, as stacked bars; the same figures as a table for screen readers. */
function ThroughputChart({ throughput }: { throughput: Overview['throughput'] }) {
  const max = Math.max(1, ...throughput.map((minute) => minute.succeeded + minute.failed + minute.canceled));
  const width = 12;
  const height = 60;
  const total = throughput.reduce((sum, minute) => sum + minute.succeeded + minute.failed + minute.canceled, 0);
  const label = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${throughput.length * width} ${height}`} preserveAspectRatio="none" role="img" aria-label={`${total} generations ended in the last ${throughput.length} minutes, at most ${max} in one minute`}>
        {throughput.map((minute, index) => {
          let y = height;
          return (
            <g key={minute.minute}>
              {(['succeeded', 'failed', 'canceled'] as const).map((state) => {
                const h = (minute[state] / max) * (height - 4);
                y -= h;
                return h > 0 ? <rect key={state} class={`bar-${state}`} x={index * width + 1} y={y} width={width - 2} height={h} /> : null;
              })}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <span>{throughput[0] && label(throughput[0].minute)}</span>
        <span class="legend">
          <i class="bar-succeeded" /> succeeded <i class="bar-failed" /> failed <i class="bar-canceled" /> canceled · peak {max}/min
        </span>
        <span>{throughput.at(-1) && label(throughput.at(-1)?.minute ?? '')}</span>
      </figcaption>
      <table class="visually-hidden">
        <caption>Generations ended per minute</caption>
        <thead>
          <tr>
            <th scope="col">Minute</th>
            <th scope="col">Succeeded</th>
            <th scope="col">Failed</th>
            <th scope="col">Canceled</th>
          </tr>
        </thead>
        <tbody>
          {throughput.map((minute) => (
            <tr key={minute.minute}>
              <td>{label(minute.minute)}</td>
              <td>{minute.succeeded}</td>
              <td>{minute.failed}</td>
              <td>{minute.canceled}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
