// The Studio: sign in, then create and watch work, browse the gallery, see credits and usage,
// and (with the admin token) the operator's view. Views are addressed by the URL's fragment.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { connect, describeError } from './api.ts';
import { CreateForm } from './create-form.tsx';
import { GenerationCard } from './generation-card.tsx';
import { Operator } from './operator.tsx';
import { keepKey, storedKey, takeKeyFromFragment } from './session.ts';
import { FieldError, useStore } from './ui.tsx';
import { Usage } from './usage.tsx';
import { createWorkStore, type WorkStore } from './work.ts';

const VIEWS = [
  { id: 'create', label: 'Create' },
  { id: 'gallery', label: 'Gallery' },
  { id: 'usage', label: 'Usage' },
  { id: 'operator', label: 'Operator' },
] as const;
type View = (typeof VIEWS)[number]['id'];

const viewOf = (hash: string): View => VIEWS.find((view) => `#${view.id}` === hash)?.id ?? 'create';

export function App() {
  const [key, setKey] = useState(() => takeKeyFromFragment() ?? storedKey());
  // A sign-in link opened in a tab that shows the Studio already changes only the fragment.
  useEffect(() => {
    const onHash = () => {
      const handed = takeKeyFromFragment();
      if (handed) setKey(handed);
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  if (!key) return <SignIn onKey={(value) => (keepKey(value), setKey(value))} />;
  return <Studio key={key} apiKey={key} onSignOut={() => (keepKey(undefined), setKey(undefined))} />;
}

function SignIn({ onKey }: { onKey: (key: string) => void }) {
  const [value, setValue] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const key = value.trim();
    setBusy(true);
    setProblem(undefined);
    const kiln = connect(key);
    try {
      await kiln.models(); // any tenant call: proves the key
      onKey(key);
    } catch (error) {
      const view = describeError(error);
      setProblem(view.code === 'UNAUTHORIZED' ? 'Kiln does not know this key (or it was revoked). Check it and try again.' : view.message);
    } finally {
      kiln.close();
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1>
        <span class="logo" aria-hidden="true" /> Kiln Studio
      </h1>
      <p>Generate images, watch them through every stage, and collect what comes out.</p>
      <form onSubmit={(event) => void submit(event)} noValidate>
        <div class="field">
          <label for="api-key">API key</label>
          <input id="api-key" type="password" autoComplete="off" spellcheck={false} value={value} onInput={(event) => setValue(event.currentTarget.value)} aria-invalid={problem ? true : undefined} aria-describedby={problem ? 'error-api-key' : 'api-key-hint'} />
          <FieldError id="error-api-key" messages={problem ? [problem] : undefined} />
        </div>
        <button type="submit" class="primary" disabled={busy || value.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p id="api-key-hint" class="muted">
        The key stays in this browser. In development, the first <code>npm start</code> prints a Studio link that signs in with its development key;
        otherwise create a key with <code>npm run keys -- create --tenant NAME</code>.
      </p>
    </main>
  );
}

function Studio({ apiKey, onSignOut }: { apiKey: string; onSignOut: () => void }) {
  const kiln = useMemo(() => connect(apiKey), [apiKey]);
  const store = useMemo(() => createWorkStore(kiln), [kiln]);
  const [view, setView] = useState<View>(() => viewOf(location.hash));
  const [problem, setProblem] = useState<string | undefined>();

  useEffect(() => {
    store.start().catch((error: unknown) => {
      const described = describeError(error);
      if (described.code === 'UNAUTHORIZED') onSignOut();
      else setProblem(described.message);
    });
    const onHash = () => setView(viewOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => {
      removeEventListener('hashchange', onHash);
      store.close();
      kiln.close();
    };
  }, [store, kiln]);
  useEffect(() => {
    document.title = `${VIEWS.find((entry) => entry.id === view)?.label ?? 'Studio'} · Kiln Studio`;
  }, [view]);

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">
          <span class="logo" aria-hidden="true" /> Kiln Studio
        </p>
        <nav aria-label="Views">
          <ul>
            {VIEWS.map((entry) => (
              <li key={entry.id}>
                <a href={`#${entry.id}`} aria-current={view === entry.id ? 'page' : undefined}>
                  {entry.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <LiveIndicator store={store} />
        <button type="button" class="link" onClick={onSignOut}>
          Sign out<span class="visually-hidden"> (forget the key in this browser)</span>
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {problem && (
          <p class="problem" role="alert">
            {problem}
          </p>
        )}
        {view === 'create' && (
          <div class="create-layout">
            <CreateForm kiln={kiln} store={store} />
            <WorkList store={store} />
          </div>
        )}
        {view === 'gallery' && <Gallery store={store} />}
        {view === 'usage' && <Usage kiln={kiln} />}
        {view === 'operator' && <Operator />}
      </main>
    </>
  );
}

function LiveIndicator({ store }: { store: WorkStore }) {
  const { live } = useStore(store);
  const text = live.kind === 'live' ? 'Live' : live.kind === 'connecting' ? 'Connecting…' : `Live updates stopped: ${live.message}`;
  return (
    <p class={`live live-${live.kind}`} role="status" title={live.kind === 'live' ? 'Stages arrive over the WebSocket as they happen' : undefined}>
      <span class="dot" aria-hidden="true" />
      {text}
    </p>
  );
}

function WorkList({ store }: { store: WorkStore }) {
  useStore(store);
  const [filter, setFilter] = useState<'all' | 'active' | 'failed'>('all');
  const items = store.items.filter((item) =>
    filter === 'all' ? true : filter === 'active' ? ['queued', 'running'].includes(item.generation.state) : ['failed', 'canceled'].includes(item.generation.state),
  );
  return (
    <section class="work" aria-labelledby="work-title">
      <div class="panel-head">
        <h2 id="work-title">Work</h2>
        <fieldset class="segmented small" aria-label="Show">
          {(
            [
              ['all', 'All'],
              ['active', 'In progress'],
              ['failed', 'Failed or canceled'],
            ] as const
          ).map(([value, label]) => (
            <label key={value}>
              <input type="radio" name="work-filter" value={value} checked={filter === value} onChange={() => setFilter(value)} />
              {label}
            </label>
          ))}
        </fieldset>
      </div>
      {items.length === 0 && <p class="muted">Nothing here yet. What you create shows here, moving through its stages as they happen.</p>}
      <div class="cards">
        {items.slice(0, 60).map((item) => (
          <GenerationCard key={item.generation.id} item={item} store={store} />
        ))}
      </div>
      {store.hasMore && <MoreButton store={store} />}
    </section>
  );
}

function Gallery({ store }: { store: WorkStore }) {
  useStore(store);
  const finished = store.items.filter((item) => item.generation.state === 'succeeded' && item.generation.assets.length > 0);
  return (
    <section class="gallery" aria-labelledby="gallery-title">
      <div class="panel-head">
        <h2 id="gallery-title">Gallery</h2>
        <p class="muted">{finished.length} finished</p>
      </div>
      {finished.length === 0 && <p class="muted">Finished work shows here: every output with its variants, at their real shapes.</p>}
      <div class="cards gallery-cards">
        {finished.map((item) => (
          <GenerationCard key={item.generation.id} item={item} store={store} size="large" />
        ))}
      </div>
      {store.hasMore && <MoreButton store={store} />}
    </section>
  );
}

function MoreButton({ store }: { store: WorkStore }) {
  const [busy, setBusy] = useState(false);
  return (
    <p>
      <button type="button" disabled={busy} onClick={() => (setBusy(true), void store.more().finally(() => setBusy(false)))}>
        {busy ? 'Loading…' : 'Show older'}
      </button>
    </p>
  );
}

