// The typed Kiln client for Node and browsers. It imports the server's router as a type
// only, so every input and output is checked at compile time and no server code ships.
import { TRPCClientError, createTRPCClient, httpBatchLink } from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '../server/router.ts';

export type { AppRouter };
export type KilnInputs = inferRouterInputs<AppRouter>;
export type KilnOutputs = inferRouterOutputs<AppRouter>;
export type GenerateInput = KilnInputs['generate'];
export type GenerationStatus = KilnOutputs['status'];
export type GenerationState = GenerationStatus['state'];
export type Asset = GenerationStatus['assets'][number];
export type BatchStatus = KilnOutputs['batchStatus'];

export { TRPCClientError };
/** Errors from Kiln: `error.data?.code` is the tRPC code, `error.data?.fields` the invalid fields. */
export type KilnClientError = TRPCClientError<AppRouter>;

export const FINAL_STATES: readonly GenerationState[] = ['succeeded', 'failed', 'canceled'];

export interface KilnClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  apiKey: string;
  /** Custom fetch (tests, proxies, older runtimes). */
  fetch?: typeof globalThis.fetch;
}

export interface WaitOptions {
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
  /** First poll interval; grows to `maxIntervalMs` (defaults 250 ms → 2 s). */
  intervalMs?: number;
  maxIntervalMs?: number;
  signal?: AbortSignal;
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

export function createKilnClient(options: KilnClientOptions) {
  const trpc = createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `${options.url.replace(/\/+$/, '')}/trpc`,
        headers: () => ({ Authorization: `Bearer ${options.apiKey}` }),
        maxURLLength: 4000,
        maxItems: 20, // the server's limit of calls per HTTP request
        ...(options.fetch ? { fetch: options.fetch } : {}),
      }),
    ],
  });

  const status = (input: KilnInputs['status']) => trpc.status.query(input);

  return {
    /** Queue one prompt. Answers at once with `{ id, status }`. */
    generate: (input: KilnInputs['generate']) => trpc.generate.mutate(input),
    /** Queue up to 1,000 prompts in one transaction. */
    batch: (input: KilnInputs['batch']) => trpc.batch.mutate(input),
    status,
    batchStatus: (input: KilnInputs['batchStatus']) => trpc.batchStatus.query(input),
    list: (input?: KilnInputs['list']) => trpc.list.query(input),
    cancel: (input: KilnInputs['cancel']) => trpc.cancel.mutate(input),

    /** Resolves with the generation once it is succeeded, failed or canceled. */
    async waitFor(id: string, wait: WaitOptions = {}): Promise<GenerationStatus> {
      const deadline = Date.now() + (wait.timeoutMs ?? 10 * 60_000);
      let interval = wait.intervalMs ?? 250;
      for (;;) {
        const current = await status({ id });
        if (FINAL_STATES.includes(current.state)) return current;
        if (Date.now() + interval > deadline) throw new WaitTimeoutError(`generation ${id} still ${current.state} after waiting`);
        await delay(interval, wait.signal);
        interval = Math.min(wait.maxIntervalMs ?? 2000, Math.round(interval * 1.5));
      }
    },

    /** The underlying tRPC client, for procedures without a helper. */
    trpc,
  };
}

export type KilnClient = ReturnType<typeof createKilnClient>;

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
