// The tenant's credit and spend: balance, spend by model and day, and what the cache saved.
import { useEffect, useState } from 'preact/hooks';
import { describeError, type Credits, type KilnClient, type Stats } from './api.ts';
import { formatUsd } from './format.ts';

export function Usage({ kiln }: { kiln: KilnClient }) {
  const [credits, setCredits] = useState<Credits | undefined>();
  const [stats, setStats] = useState<Stats | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [loading, setLoading] = useState(false);

  const load = async () => {
    setLoading(true);
    setProblem(undefined);
    try {
      const [nextCredits, nextStats] = await Promise.all([kiln.credits({ days: 30 }), kiln.stats()]);
      setCredits(nextCredits);
      setStats(nextStats);
    } catch (error) {
      setProblem(describeError(error).message);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => void load(), [kiln]);

  const usage = credits?.usage ?? [];
  const sum = (key: 'generations' | 'succeeded' | 'fromCache' | 'joined' | 'chargedUsd' | 'providerCostUsd') => usage.reduce((total, row) => total + row[key], 0);
  const generations = sum('generations');
  const served = sum('fromCache') + sum('joined');

  return (
    <section class="panel" aria-labelledby="usage-title">
      <div class="panel-head">
        <h2 id="usage-title">Credits and usage</h2>
        <button type="button" onClick={() => void load()} disabled={loading}>
          {loading ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      {problem && <p role="alert" class="problem">{problem}</p>}
      {credits && (
        <div class="figures">
          <Figure label="Available" value={credits.metered ? formatUsd(credits.availableUsd) : 'not metered'} note={credits.metered ? undefined : 'never granted credit: nothing is charged'} />
          <Figure label="Held by work in progress" value={formatUsd(credits.heldUsd)} />
          <Figure label="Spent, last 30 days" value={formatUsd(sum('chargedUsd'))} note={`provider cost ${formatUsd(sum('providerCostUsd'))}`} />
          <Figure label="Cache hits" value={String(served)} note={generations > 0 ? `${Math.round((served / generations) * 100)} % of ${generations} generations (${sum('fromCache')} from cache, ${sum('joined')} joined)` : 'none yet'} />
        </div>
      )}
      {stats && (
        <p class="muted">
          Now: {stats.generations.queued} queued, {stats.generations.running} running, {stats.generations.succeeded} succeeded, {stats.generations.failed} failed, {stats.generations.canceled} canceled in all;
          served without a provider call: {stats.servedFrom.cache} from cache, {stats.servedFrom.joined} joined.
        </p>
      )}
      {credits && (
        <div class="table-wrap">
          <table>
            <caption>Spend by model and day (UTC), last 30 days</caption>
            <thead>
              <tr>
                <th scope="col">Day</th>
                <th scope="col">Model</th>
                <th scope="col" class="num">Generations</th>
                <th scope="col" class="num">Succeeded</th>
                <th scope="col" class="num">From cache</th>
                <th scope="col" class="num">Joined</th>
                <th scope="col" class="num">Charged</th>
                <th scope="col" class="num">Provider cost</th>
              </tr>
            </thead>
            <tbody>
              {usage.length === 0 && (
                <tr>
                  <td colSpan={8}>Nothing yet: generations show here once they end.</td>
                </tr>
              )}
              {usage.map((row) => (
                <tr key={`${row.day}-${row.model}`}>
                  <td>{row.day}</td>
                  <td>{row.model}</td>
                  <td class="num">{row.generations}</td>
                  <td class="num">{row.succeeded}</td>
                  <td class="num">{row.fromCache}</td>
                  <td class="num">{row.joined}</td>
                  <td class="num">{formatUsd(row.chargedUsd)}</td>
                  <td class="num">{formatUsd(row.providerCostUsd)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function Figure({ label, value, note }: { label: string; value: string; note?: string | undefined }) {
  return (
    <div class="figure">
      <p class="figure-label">{label}</p>
      <p class="figure-value">{value}</p>
      {note && <p class="figure-note">{note}</p>}
    </div>
  );
}
