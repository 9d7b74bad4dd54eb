// The tenant's generations as the page knows them, kept live by the WebSocket subscription:
// one subscription to all of the tenant's events (new work, every state change, from this
// page or any other client), and one per generation in progress (its full history, its
// progress and its place in the queue). Nothing is polled. The client-sdk's watch() resumes
// after a dropped connection from the last event it received, so no stage is missed.
import { describeError, type GenerateItem, type Generation, type GenerationEvent, type KilnClient, type QueueEstimate } from './api.ts';

export interface WorkItem {
  generation: Generation;
  /** Its stages as known: from `status`, and as they arrive; oldest first, each once. */
  events: GenerationEvent[];
  /** While queued and followed: how many go first, and when it should start and finish. */
  queue: QueueEstimate | null;
  /** The model's progress (0–1) while the provider runs it. */
  progress: number | null;
  /** What this page submitted for it (retry submits it again). */
  input: GenerateItem | undefined;
  /** A name to show beside the prompt (the photo's file name). */
  label: string | undefined;
  /** Its full stage list has been read (status), not only what arrived live. */
  detailed: boolean;
  /** What status says of its relatives: the generations made from it, its parts (a composite's steps), the optimiser's bytes. */
  related: Related | undefined;
}

export type Related = Pick<KilnStatus, 'children' | 'parts' | 'optimized'>;
type KilnStatus = Awaited<ReturnType<KilnClient['status']>>;

export type LiveState = { kind: 'connecting' } | { kind: 'live' } | { kind: 'stopped'; message: string };

type RealtimeEvent = Awaited<ReturnType<ReturnType<KilnClient['watch']>['next']>>['value'];

const FINAL = new Set(['succeeded', 'failed', 'canceled']);
/** Generations followed one by one at once (the server allows 100 subscriptions per WebSocket). */
const MAX_FOLLOWED = 40;

export function createWorkStore(kiln: KilnClient) {
  const items = new Map<string, WorkItem>();
  let order: string[] = [];
  let nextCursor: string | null = null;
  let live: LiveState = { kind: 'connecting' };
  const listeners = new Set<() => void>();
  const stop = new AbortController();
  const followed = new Set<string>();
  const fetching = new Map<string, Promise<void>>();
  let flush: ReturnType<typeof setTimeout> | undefined;

  // Many events can arrive at once (a batch): the page is drawn again once for all of them.
  const changed = () => {
    flush ??= setTimeout(() => {
      flush = undefined;
      for (const listener of listeners) listener();
    }, 16);
  };

  const place = (id: string, createdAt: string) => {
    if (order.includes(id)) return;
    const at = order.findIndex((other) => (items.get(other)?.generation.createdAt ?? '') < createdAt);
    order = at === -1 ? [...order, id] : [...order.slice(0, at), id, ...order.slice(at)];
  };

  const upsert = (generation: Generation, extra: Partial<WorkItem> = {}): WorkItem => {
    const existing = items.get(generation.id);
    const item: WorkItem = existing
      ? { ...existing, ...extra, generation: { ...existing.generation, ...generation } }
      : { generation, events: [], queue: null, progress: null, input: undefined, label: undefined, detailed: false, related: undefined, ...extra };
    if (FINAL.has(item.generation.state)) item.queue = null;
    items.set(generation.id, item);
    // A composite's part is shown in its composite's details, not as work of its own.
    if (generation.partOf === null) place(generation.id, generation.createdAt);
    changed();
    return item;
  };

  /** Reads one generation whole: its summary, assets, stages and queue estimate. */
  function refresh(id: string): Promise<void> {
    const pending = fetching.get(id);
    if (pending) return pending;
    const done = kiln
      .status({ id })
      .then(({ events, queue, children, parts, optimized, ...generation }) => {
        const item = upsert(generation, { queue, related: { children, parts, optimized } });
        item.events = mergeEvents(item.events, events);
        item.detailed = true;
        changed();
        if (!FINAL.has(generation.state) && generation.partOf === null) follow(id);
      })
      .catch(() => {}) // gone (pruned) or the connection failed: what the page shows stays
      .finally(() => fetching.delete(id));
    fetching.set(id, done);
    return done;
  }

  function apply(event: RealtimeEvent): void {
    if (!event) return;
    const item = items.get(event.generationId);
    if (!item) {
      void refresh(event.generationId); // made elsewhere: read it whole, then it is followed
      return;
    }
    if (event.stage === 'queue.position') {
      item.queue = event.state === 'queued' ? (event.data as unknown as QueueEstimate) : null;
      changed();
      return;
    }
    if (item.events.some((known) => eventKey(known.id) === eventKey(event.id))) return; // both subscriptions bring it
    item.events = mergeEvents(item.events, [{ id: event.id, stage: event.stage, at: event.at, data: event.data }]);
    const latest = item.events.at(-1);
    if (latest?.id === event.id) {
      item.generation = { ...item.generation, state: event.state, stage: event.stage };
      if (event.stage === 'started' && !item.generation.startedAt) item.generation.startedAt = event.at;
    }
    if (event.stage === 'provider.processing' && typeof event.data.progress === 'number') item.progress = event.data.progress;
    if (event.state !== 'queued') item.queue = null;
    if (event.assets) item.generation = { ...item.generation, assets: event.assets };
    changed();
    // Final: read it once more for what the event does not carry (its error, its end time).
    if (FINAL.has(event.state)) void refresh(event.generationId);
  }

  /** Follows one generation in progress: its history first, then every stage, its progress and queue position. */
  function follow(id: string): void {
    if (followed.has(id) || followed.size >= MAX_FOLLOWED || stop.signal.aborted) return;
    followed.add(id);
    void (async () => {
      try {
        for await (const event of kiln.watch({ generationId: id }, { signal: stop.signal })) apply(event);
      } catch {
        // a permanent error (gone, signed out): the all-events subscription reports the connection
      } finally {
        followed.delete(id);
        // A turn came free: the oldest unfollowed generation in progress takes it.
        const waiting = [...order].reverse().find((other) => !followed.has(other) && !FINAL.has(items.get(other)?.generation.state ?? 'succeeded'));
        if (waiting) follow(waiting);
      }
    })();
  }

  async function listenToAll(onStarted: () => void): Promise<void> {
    const started = () => {
      live = { kind: 'live' };
      changed();
      onStarted();
    };
    try {
      for await (const event of kiln.watch({}, { signal: stop.signal, onStarted: started })) apply(event);
    } catch (error) {
      if (stop.signal.aborted) return;
      live = { kind: 'stopped', message: describeError(error).message };
      changed();
    }
  }

  return {
    subscribe(listener: () => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get items(): WorkItem[] {
      return order.flatMap((id) => items.get(id) ?? []);
    },
    get(id: string): WorkItem | undefined {
      return items.get(id);
    },
    get live(): LiveState {
      return live;
    },
    get hasMore(): boolean {
      return nextCursor !== null;
    },

    /** Starts the live feed, then reads the newest generations (nothing that happens between is missed). */
    async start(): Promise<void> {
      let markStarted = () => {};
      const started = new Promise<void>((resolve) => (markStarted = resolve));
      setTimeout(markStarted, 3_000); // slow to start: read the list anyway
      void listenToAll(markStarted);
      await started;
      await this.more(true);
    },

    /** The next page of older generations (or the first). */
    async more(first = false): Promise<void> {
      const page = await kiln.list({ limit: 30, ...(!first && nextCursor ? { cursor: nextCursor } : {}) });
      nextCursor = page.nextCursor;
      for (const generation of page.items) {
        upsert(generation);
        if (!FINAL.has(generation.state)) void refresh(generation.id);
      }
      changed();
    },

    /** What the page submitted: shown at once, then followed. */
    async added(ids: string[], inputs: (GenerateItem | undefined)[], labels: (string | undefined)[], batchId?: string): Promise<void> {
      ids.forEach((id, index) => {
        const existing = items.get(id);
        if (existing) Object.assign(existing, { input: inputs[index], label: labels[index] });
      });
      if (batchId && ids.length > 5) {
        const page = await kiln.list({ batchId, limit: 100 });
        for (const generation of page.items) upsert(generation, { input: inputs[ids.indexOf(generation.id)], label: labels[ids.indexOf(generation.id)] });
        for (const id of ids.slice(0, MAX_FOLLOWED)) void refresh(id);
      } else {
        await Promise.all(ids.map((id) => refresh(id)));
      }
      ids.forEach((id, index) => {
        const item = items.get(id);
        if (item) Object.assign(item, { input: inputs[index], label: labels[index] });
      });
      changed();
    },

    /** Reads a generation's full stage list (for its details). */
    details: (id: string) => refresh(id),

    async cancel(id: string): Promise<void> {
      const answer = await kiln.cancel({ id });
      const item = items.get(id);
      if (item) upsert({ ...item.generation, state: answer.status });
      await refresh(id);
    },

    /** Submits a failed or canceled generation again, as it was asked for: a new generation. */
    async retry(id: string): Promise<string> {
      const item = items.get(id);
      if (!item) throw new Error('that generation is no longer listed');
      const input = item.input ?? inputOf(item.generation);
      const { id: next } = await kiln.generate({ ...input, cache: 'off' });
      await this.added([next], [input], [item.label]);
      return next;
    },

    close(): void {
      stop.abort();
      listeners.clear();
      if (flush) clearTimeout(flush);
    },
  };
}

export type WorkStore = ReturnType<typeof createWorkStore>;

/** One event, whether it came from `status` (its row id) or a subscription (its feed position, `xid:id`). */
const eventKey = (id: string): string => id.slice(id.indexOf(':') + 1);

function mergeEvents(known: GenerationEvent[], more: GenerationEvent[]): GenerationEvent[] {
  const byId = new Map(known.map((event) => [eventKey(event.id), event]));
  for (const event of more) if (!byId.has(eventKey(event.id))) byId.set(eventKey(event.id), event);
  return [...byId.values()].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/** A generation the page did not submit, asked for again from what it shows. */
function inputOf(generation: Generation): GenerateItem {
  const platforms = [...new Set(generation.assets.flatMap((asset) => (asset.platform ? [asset.platform] : [])))] as NonNullable<GenerateItem['platforms']>;
  const formats = [...new Set(generation.assets.filter((asset) => asset.kind === 'variant').map((asset) => asset.format))] as NonNullable<GenerateItem['formats']>;
  const shape = { ...(platforms.length > 0 ? { platforms } : {}), ...(formats.length > 0 ? { formats } : {}), model: generation.model as NonNullable<GenerateItem['model']>, outputs: generation.outputs };
  // What it started from: a source, or another generation's output (a chain).
  const image = generation.from ? { from: generation.from.generationId, fromOutput: generation.from.output } : { sourceId: generation.sourceId ?? '' };
  switch (generation.operation) {
    case 'text-to-image':
      return { ...shape, prompt: generation.prompt };
    case 'edit':
      return { ...shape, ...image, operation: 'edit', prompt: generation.prompt };
    case 'image-to-image':
      return { ...shape, ...image, operation: 'image-to-image', prompt: generation.prompt };
    case 'upscale':
      return { ...shape, ...image, operation: 'upscale' };
    case 'remove-background':
      return { ...shape, ...image, operation: 'remove-background' };
    case 'optimize': {
      // The optimiser picks each step's model itself, and makes one image.
      const { model: _model, outputs: _outputs, ...framing } = shape;
      return { ...framing, ...image, operation: 'optimize' };
    }
  }
}
