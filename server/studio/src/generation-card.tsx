// One generation as it moves through its stages: state, stage names with their timings,
// the model's progress, its place in the queue and when it should start and finish; then its
// outputs, or its failure's reason and what to do about it. Cancel and retry from here.
import { useState } from 'preact/hooks';
import { FAILURE_ADVICE, describeError } from './api.ts';
import { formatBytes, formatSeconds, formatTime, fromNow } from './format.ts';
import { operationLabel } from './options.ts';
import { Outputs, StateBadge, useNow } from './ui.tsx';
import type { WorkItem, WorkStore } from './work.ts';

const STAGE_NAMES: Record<string, string> = {
  queued: 'queued',
  started: 'started',
  'provider.input_uploaded': 'photo sent',
  'provider.created': 'at the provider',
  'provider.processing': 'model running',
  downloading: 'downloading',
  'cache.hit': 'from cache',
  'cache.joined': 'joined identical work',
  'cache.released': 'back to the queue',
  'input.awaited': 'waiting for the image it builds on',
  'input.ready': 'its image is ready',
  'part.succeeded': 'a step done',
  rendering: 'rendering variants',
  stored: 'stored',
  succeeded: 'succeeded',
  failed: 'failed',
  canceled: 'canceled',
  retrying: 'retrying',
  deferred: 'waiting (deferred)',
};

export const stageName = (stage: string): string => STAGE_NAMES[stage] ?? stage;

export function GenerationCard({ item, store, size = 'small' }: { item: WorkItem; store: WorkStore; size?: 'small' | 'large' }) {
  const { generation } = item;
  const [busy, setBusy] = useState<'cancel' | 'retry' | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [open, setOpen] = useState(false);
  const active = generation.state === 'queued' || generation.state === 'running';
  const title = generation.prompt || `${operationLabel(generation.operation)}${item.label ? ` of ${item.label}` : ''}`;
  const titleId = `g-${generation.id}`;

  const act = async (what: 'cancel' | 'retry') => {
    setBusy(what);
    setProblem(undefined);
    try {
      if (what === 'cancel') await store.cancel(generation.id);
      else await store.retry(generation.id);
    } catch (error) {
      setProblem(describeError(error).message);
    } finally {
      setBusy(undefined);
    }
  };
  const toggle = () => {
    // Read again on every opening: its children may have been made since.
    if (!open) void store.details(generation.id);
    setOpen(!open);
  };

  return (
    <article class={`card card-${generation.state}`} aria-labelledby={titleId} data-generation-id={generation.id} data-state={generation.state}>
      <header class="card-head">
        <h3 id={titleId} class="card-title">
          {title}
        </h3>
        <StateBadge state={generation.state} />
      </header>
      <p class="meta">
        {operationLabel(generation.operation)} · {generation.model.split('/').at(-1)} · {generation.outputs} output{generation.outputs === 1 ? '' : 's'} · {formatTime(generation.createdAt)}
        {generation.servedFrom && <> · {generation.servedFrom.kind === 'cache' ? 'served from cache' : 'joined identical work'}</>}
      </p>
      {active && <Progress item={item} />}
      <Stages item={item} timelineOnly={size === 'large'} />
      {generation.state === 'failed' && generation.error && (
        <div class="failure" role="note">
          <p>
            <strong>{generation.error.message}</strong>
          </p>
          <p>{FAILURE_ADVICE[generation.error.code] ?? 'Retry, or change what you asked for.'}</p>
          <p class="muted">code: {generation.error.code}</p>
        </div>
      )}
      {generation.assets.length > 0 && <Outputs assets={generation.assets} size={size} />}
      {problem && (
        <p class="field-error" role="alert">
          {problem}
        </p>
      )}
      <footer class="card-actions">
        {active && (
          <button type="button" onClick={() => void act('cancel')} disabled={busy !== undefined}>
            {busy === 'cancel' ? 'Canceling…' : 'Cancel'}
          </button>
        )}
        {(generation.state === 'failed' || generation.state === 'canceled') && (
          <button type="button" onClick={() => void act('retry')} disabled={busy !== undefined}>
            {busy === 'retry' ? 'Submitting…' : 'Retry'}
          </button>
        )}
        <button type="button" class="link" aria-expanded={open} aria-controls={`${titleId}-details`} onClick={toggle}>
          {open ? 'Hide details' : 'Details'}
        </button>
      </footer>
      {open && (
        <dl class="details" id={`${titleId}-details`}>
          <dt>Id</dt>
          <dd>
            <code>{generation.id}</code>
          </dd>
          <dt>Model</dt>
          <dd>{generation.model}</dd>
          {generation.sourceId && (
            <>
              <dt>Source</dt>
              <dd>
                <code>{generation.sourceId}</code>
              </dd>
            </>
          )}
          {generation.from && (
            <>
              <dt>Built on</dt>
              <dd>
                <a href={`#g-${generation.from.generationId}`}>
                  output {generation.from.output + 1} of <code>{generation.from.generationId}</code>
                </a>
              </dd>
            </>
          )}
          {item.related && item.related.children.length > 0 && (
            <>
              <dt>Built from it</dt>
              <dd>
                <ul class="related">
                  {item.related.children.map((child) => (
                    <li key={child.id}>
                      <a href={`#g-${child.id}`}>{operationLabel(child.operation)}</a> · {child.state}
                    </li>
                  ))}
                </ul>
              </dd>
            </>
          )}
          {item.related && item.related.parts.length > 0 && (
            <>
              <dt>{generation.operation === 'optimize' ? 'Steps' : 'Parts'}</dt>
              <dd>
                <ol class="related">
                  {item.related.parts.map((part) => (
                    <li key={part.id}>
                      {operationLabel(part.operation)} ({part.model}) · {part.state}
                      {part.error && <> — {part.error.message}</>}
                    </li>
                  ))}
                </ol>
              </dd>
            </>
          )}
          {item.related?.optimized && (
            <>
              <dt>Bytes</dt>
              <dd>
                photo {formatBytes(item.related.optimized.bytesBefore)} → variants {formatBytes(item.related.optimized.bytesAfter)}
              </dd>
            </>
          )}
          {generation.batchId && (
            <>
              <dt>Batch</dt>
              <dd>
                <code>{generation.batchId}</code>
              </dd>
            </>
          )}
          {generation.predictionId && (
            <>
              <dt>Prediction</dt>
              <dd>
                <code>{generation.predictionId}</code>
              </dd>
            </>
          )}
        </dl>
      )}
    </article>
  );
}

function Progress({ item }: { item: WorkItem }) {
  const now = useNow();
  const { generation, queue, progress } = item;
  if (generation.state === 'queued') {
    if (!queue) return <p class="queue">Waiting for its turn…</p>;
    const start = fromNow(queue.estimatedStartAt, now);
    const finish = fromNow(queue.estimatedFinishAt, now);
    return (
      <p class="queue" data-queue-position={queue.position}>
        {queue.position === 0 ? 'Next in line' : `${queue.position} ahead in the queue`}
        {start && <> · starts {start}</>}
        {finish && <> · done {finish}</>}
      </p>
    );
  }
  const percent = progress === null ? undefined : Math.round(progress * 100);
  return (
    <div class="progress">
      <label>
        <span>
          {stageName(generation.stage)}
          {percent !== undefined && ` · ${percent} %`}
        </span>
        <progress max={1} value={progress ?? undefined} />
      </label>
    </div>
  );
}

/** Each stage with its time since queued; in the gallery, only the time it took. */
function Stages({ item, timelineOnly }: { item: WorkItem; timelineOnly: boolean }) {
  const events = item.events;
  if (events.length === 0) return null;
  const first = new Date(events[0]?.at ?? 0).getTime();
  const last = new Date(events.at(-1)?.at ?? 0).getTime();
  const total = events.length > 1 && <p class="muted stage-total">{formatSeconds((last - first) / 1000)} from queued to {stageName(events.at(-1)?.stage ?? '')}</p>;
  if (timelineOnly) return total || null;
  // provider.processing repeats with each progress report: one entry, at its first report.
  const shown = events.filter((event, index) => event.stage !== 'provider.processing' || events[index - 1]?.stage !== 'provider.processing');
  return (
    <div class="stages">
      <ol class="stage-list" aria-label="Stages">
        {shown.map((event) => (
          <li key={event.id} class={`stage stage-${event.stage.replace(/\W/g, '-')}`} data-stage={event.stage}>
            <span class="stage-name">{stageName(event.stage)}</span>
            <span class="stage-time">+{formatSeconds((new Date(event.at).getTime() - first) / 1000)}</span>
          </li>
        ))}
      </ol>
      {total}
    </div>
  );
}
