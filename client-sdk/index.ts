// The typed Kiln client for Node and browsers. It imports the server's router as a type
// only, so every input and output is checked at compile time and no server code ships.
import { TRPCClientError, createTRPCClient, createWSClient, httpBatchLink, httpLink, isNonJsonSerializable, splitLink, wsLink } from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '../server/router.ts';
import { isTransientError, pause, retryDelayMs, retryTransient } from './transient-errors.ts';

export type { AppRouter };
export type KilnInputs = inferRouterInputs<AppRouter>;
export type KilnOutputs = inferRouterOutputs<AppRouter>;
export type GenerateInput = KilnInputs['generate'];
export type GenerationStatus = KilnOutputs['status'];
export type GenerationState = GenerationStatus['state'];
export type Asset = GenerationStatus['assets'][number];
export type BatchStatus = KilnOutputs['batchStatus'];
/** An image source, as `sources.get` answers it (`sources.upload` and `fromUrl` add `deduplicated`). */
export type ImageSource = KilnOutputs['sources']['get'];
/** One stage of a generation, as pushed by `onUpdate` / `watch`. */
export type GenerationEvent = KilnOutputs['onUpdate'] extends AsyncIterable<{ data: infer Event }> ? Event : never;

export { TRPCClientError, isTransientError };
/** Errors from Kiln: `error.data?.code` is the tRPC code, `error.data?.fields` the invalid fields. */
export type KilnClientError = TRPCClientError<AppRouter>;

export const FINAL_STATES: readonly GenerationState[] = ['succeeded', 'failed', 'canceled'];

interface ClientBaseOptions {
  /** The server's base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  /** Custom fetch (tests, proxies, older runtimes). */
  fetch?: typeof globalThis.fetch;
  /** A WebSocket implementation where there is no global one. */
  WebSocket?: typeof globalThis.WebSocket;
  /**
   * `waitFor` calls that hold a subscription at once (default 80): the server allows 100 per
   * WebSocket, so waiting for a thousand generations at once waits in turn instead of failing.
   */
  maxConcurrentWaits?: number;
  /**
   * A subscription the server has not acknowledged within this long is made again (default
   * 10 s): one sent just as the idle WebSocket closes could otherwise wait forever, since the
   * lazily opened socket is not reopened for it.
   */
  subscriptionStartTimeoutMs?: number;
}

/**
 * Services use the tenant's API key. Browsers use a scoped token minted by the tenant's
 * backend with `createToken` (read and subscribe only, one generation or batch).
 */
export type KilnClientOptions = ClientBaseOptions & ({ apiKey: string; token?: never } | { token: string; apiKey?: never });

export interface WaitOptions {
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

export function createKilnClient(options: KilnClientOptions) {
  const base = options.url.replace(/\/+$/, '');
  const credential = options.apiKey ?? options.token;
  // Subscriptions ride one WebSocket, opened on first use and closed when idle; it reconnects
  // by itself and resumes every subscription after the last event it received.
  const socket = createWSClient({
    url: `${base.replace(/^http/, 'ws')}/trpc`,
    connectionParams: options.apiKey !== undefined ? { apiKey: options.apiKey } : { token: options.token },
    lazy: { enabled: true, closeMs: 5_000 },
    retryDelayMs: (attempt) => Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2),
    ...(options.WebSocket ? { WebSocket: options.WebSocket } : {}),
  });
  const http = { url: `${base}/trpc`, headers: () => ({ Authorization: `Bearer ${credential}` }), ...(options.fetch ? { fetch: options.fetch } : {}) };
  const trpc = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (operation) => operation.type === 'subscription',
        true: wsLink({ client: socket }),
        // Uploads (FormData) cannot ride a JSON batch: each goes in a request of its own.
        false: splitLink({
          condition: (operation) => isNonJsonSerializable(operation.input),
          true: httpLink(http),
          false: httpBatchLink({
            ...http,
            maxURLLength: 4000,
            maxItems: 20, // the server's limit of calls per HTTP request
          }),
        }),
      }),
    ],
  });

  const status = (input: KilnInputs['status']) => trpc.status.query(input);
  const waitTurns = createTurns(options.maxConcurrentWaits ?? 80);
  const subscriptionStartTimeoutMs = options.subscriptionStartTimeoutMs ?? 10_000;

  /**
   * A subscription that outlives transient failures: when it fails with one (Kiln's database is
   * away, the connection broke) it subscribes again after a pause, resuming after the last event
   * it received, so the caller sees every event once, in order. Permanent errors end it.
   */
  async function* subscribe(input: KilnInputs['onUpdate'], signal: AbortSignal | undefined, onStarted?: () => void): AsyncGenerator<GenerationEvent> {
    let lastEventId: string | undefined;
    let failures = 0;
    let started = false;
    const onSubscribed = () => {
      failures = 0;
      if (!started) onStarted?.();
      started = true;
    };
    for (;;) {
      try {
        for await (const event of subscribeOnce(lastEventId ? { ...input, lastEventId } : input, signal, onSubscribed)) {
          // A queue-position update carries the last real event's id, so resuming stays exact.
          lastEventId = event.id;
          yield event;
        }
        return;
      } catch (error) {
        if (signal?.aborted || !isTransientError(error)) throw error;
        failures += 1;
        await pause(retryDelayMs(failures), signal);
        if (signal?.aborted) return;
      }
    }
  }

  /** tRPC's callback subscription as an async iterator, with a queue between the two. */
  async function* subscribeOnce(input: KilnInputs['onUpdate'], signal: AbortSignal | undefined, onStarted?: () => void): AsyncGenerator<GenerationEvent> {
    const pending: GenerationEvent[] = [];
    let failure: unknown;
    let finished = false;
    let wake: (() => void) | undefined;
    const notify = () => wake?.();
    // Not acknowledged in time: a transient failure, so subscribe() makes it again (resuming).
    const startTimer = setTimeout(() => {
      failure ??= new TRPCClientError(`the subscription did not start within ${subscriptionStartTimeoutMs} ms; subscribing again`);
      notify();
    }, subscriptionStartTimeoutMs);
    const subscription = trpc.onUpdate.subscribe(input, {
      onStarted: () => {
        clearTimeout(startTimer);
        onStarted?.();
      },
      onData: ({ data }) => {
        clearTimeout(startTimer);
        pending.push(data);
        notify();
      },
      onError: (error) => {
        failure = error;
        notify();
      },
      onComplete: () => {
        finished = true;
        notify();
      },
    });
    signal?.addEventListener('abort', notify);
    try {
      for (;;) {
        const event = pending.shift();
        if (event) {
          yield event;
          const single = input && 'generationId' in input && input.generationId;
          if (single && FINAL_STATES.includes(event.state)) return;
          continue;
        }
        if (failure) throw failure;
        if (finished || signal?.aborted) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      clearTimeout(startTimer);
      signal?.removeEventListener('abort', notify);
      subscription.unsubscribe();
    }
  }

  return {
    /** Queue one prompt, or one image operation on a source or another generation's output (`operation`). Answers at once with `{ id, status }`. */
    generate: (input: KilnInputs['generate']) => trpc.generate.mutate(input),
    /** Queue up to 1,000 prompts or image operations in one transaction. */
    batch: (input: KilnInputs['batch']) => trpc.batch.mutate(input),
    status,
    /** The chain a generation belongs to (its root's id) and the chain's latest success. */
    chain: (input: KilnInputs['chain']) => trpc.chain.query(input),
    batchStatus: (input: KilnInputs['batchStatus']) => trpc.batchStatus.query(input),
    list: (input?: KilnInputs['list']) => trpc.list.query(input),
    cancel: (input: KilnInputs['cancel']) => trpc.cancel.mutate(input),
    /** Cancels every queued or running generation of a batch. */
    cancelBatch: (input: KilnInputs['cancelBatch']) => trpc.cancelBatch.mutate(input),
    /** A short-lived, read-only token for one generation or batch, to hand to a browser. */
    createToken: (input: KilnInputs['createToken']) => trpc.createToken.mutate(input),
    /** Your generations per state, and the provider's rate-limit budgets and circuit breaker. */
    stats: () => trpc.ops.stats.query(),
    /** The models, each with its price at the provider and whether your tier may use it. */
    models: () => trpc.models.query(),
    /** Your credit balance, and your spend by model and day (the last 30 days unless `days` says otherwise). */
    credits: (input?: KilnInputs['credits']) => trpc.credits.query(input),

    /** Images to start from, each kept once (by content) and reusable by id. */
    sources: {
      /**
       * Uploads an image (PNG, JPEG, WebP or AVIF; a browser's File is a Blob). The same bytes
       * again answer the same source, `deduplicated: true`.
       */
      upload(file: Blob | Uint8Array, uploadOptions: { filename?: string } = {}) {
        const form = new FormData();
        const blob = file instanceof Blob ? file : new Blob([new Uint8Array(file)]);
        form.append('file', blob, uploadOptions.filename ?? 'image');
        if (uploadOptions.filename !== undefined) form.append('filename', uploadOptions.filename);
        return trpc.sources.upload.mutate(form);
      },
      /** Fetches an image from a URL on one of your tenant's allowed source hosts, and keeps it. */
      fromUrl: (input: KilnInputs['sources']['fromUrl']) => trpc.sources.fromUrl.mutate(input),
      /** One of your sources. */
      get: (input: KilnInputs['sources']['get']) => trpc.sources.get.query(input),
    },

    /**
     * The events of a generation, a batch, or all of the caller's generations, as they happen
     * (history first for a generation or batch). Ends when the signal aborts, or — for one
     * generation — after its final event. Transient failures are ridden out (it resumes after the
     * last event received); permanent ones end it with their error.
     */
    watch(
      target: { generationId: string } | { batchId: string } | Record<string, never> = {},
      watchOptions: { signal?: AbortSignal; /** Called once the server has the subscription: nothing after this is missed. */ onStarted?: () => void } = {},
    ) {
      return subscribe(target, watchOptions.signal, watchOptions.onStarted);
    },

    /**
     * Resolves with the generation once it is succeeded, failed or canceled (pushed, not polled).
     * Transient failures (Kiln or its database unavailable, a dropped connection) are waited out
     * until the timeout; permanent ones (NOT_FOUND, UNAUTHORIZED, …) reject at once.
     */
    async waitFor(id: string, wait: WaitOptions = {}): Promise<GenerationStatus> {
      const timeout = AbortSignal.timeout(wait.timeoutMs ?? 10 * 60_000);
      const signal = wait.signal ? AbortSignal.any([wait.signal, timeout]) : timeout;
      try {
        // A subscription to one generation starts with its history: waiting for a turn misses nothing.
        const release = await waitTurns.take(signal);
        try {
          for await (const event of subscribe({ generationId: id }, signal)) {
            if (FINAL_STATES.includes(event.state)) return await retryTransient(() => status({ id }), signal);
          }
        } finally {
          release();
        }
      } catch (error) {
        if (!timeout.aborted) throw error;
      }
      if (timeout.aborted) throw new WaitTimeoutError(`generation ${id} did not finish in time`);
      throw signal.reason;
    },

    /** Closes the WebSocket (subscriptions end). The HTTP side needs no closing. */
    close: () => socket.close(),

    /** The underlying tRPC client, for procedures without a helper. */
    trpc,
  };
}

export type KilnClient = ReturnType<typeof createKilnClient>;

/** At most `limit` holders at once; the others wait in order (or give up when their signal aborts). */
function createTurns(limit: number) {
  let held = 0;
  const waiting: (() => void)[] = [];
  // A released turn passes straight to the next in line, so there are never more than `limit`.
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else held -= 1;
  };
  return {
    async take(signal: AbortSignal): Promise<() => void> {
      signal.throwIfAborted();
      if (held < limit) {
        held += 1;
        return release;
      }
      await new Promise<void>((resolve, reject) => {
        const turn = () => {
          signal.removeEventListener('abort', abort);
          resolve();
        };
        const abort = () => {
          waiting.splice(waiting.indexOf(turn), 1);
          reject(signal.reason);
        };
        waiting.push(turn);
        signal.addEventListener('abort', abort, { once: true });
      });
      return release;
    },
  };
}
