// Prompt directives make demos and tests deterministic without touching the simulator's config:
//   [sim:fail]      the prediction ends `failed` with a model error
//   [sim:nsfw]      the prediction ends `failed` with Replicate's NSFW message
//   [sim:slow=MS]   the prediction runs MS milliseconds (overrides latencyMs)
// They are matched case-insensitively anywhere in `input.prompt` and are left in the prompt.

export interface PromptDirectives {
  readonly fail: boolean;
  readonly nsfw: boolean;
  readonly slowMs: number | null;
}

export function parseDirectives(prompt: string): PromptDirectives {
  const slow = /\[sim:slow=(\d+)\]/i.exec(prompt);
  return {
    fail: /\[sim:fail\]/i.test(prompt),
    nsfw: /\[sim:nsfw\]/i.test(prompt),
    slowMs: slow?.[1] === undefined ? null : Number(slow[1]),
  };
}

export const NSFW_ERROR = 'NSFW content detected. Try running it again, or try a different prompt.';
export const DIRECTIVE_FAILURE_ERROR = 'Simulated model failure: the prompt contains [sim:fail].';
/** What a random failure (failureRate) reports: the most common real-world model error. */
export const RANDOM_FAILURE_ERROR =
  'CUDA out of memory. Tried to allocate 2.25 GiB (GPU 0; 79.15 GiB total capacity; 74.02 GiB already allocated; 1.94 GiB free; 76.31 GiB reserved in total by PyTorch)';
