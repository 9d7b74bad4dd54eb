import { createHash } from 'node:crypto';

// The models the simulator knows. Anything else answers 404 like Replicate.

export type ModelFamily = 'flux' | 'sdxl';

export interface ModelSpec {
  readonly owner: string;
  readonly name: string;
  /** 64-hex version id; accepted in POST /v1/predictions as `version`. */
  readonly version: string;
  readonly family: ModelFamily;
  /** Denoising steps shown in the progress logs when the input does not choose them. */
  readonly defaultSteps: number;
  /** Upper bound of `num_inference_steps`, or null when the model has no such input. */
  readonly maxSteps: number | null;
  /** Whether `num_outputs` is an input (flux-1.1-pro has none and makes one image). */
  readonly acceptsNumOutputs: boolean;
  /**
   * flux-1.1-pro's output schema is a single URI string; flux-schnell, flux-dev and sdxl
   * return an array of URIs. Mirrored here so adapters handle both shapes.
   */
  readonly singleOutput: boolean;
}

/** Official models expose no public version hash; the simulator derives a stable fake one. */
function fakeVersion(model: string): string {
  return createHash('sha256').update(`kiln-simulator:${model}`).digest('hex');
}

function flux(name: string, options: Pick<ModelSpec, 'defaultSteps' | 'maxSteps' | 'acceptsNumOutputs' | 'singleOutput'>): ModelSpec {
  return { owner: 'black-forest-labs', name, version: fakeVersion(`black-forest-labs/${name}`), family: 'flux', ...options };
}

export const KNOWN_MODELS: readonly ModelSpec[] = [
  flux('flux-schnell', { defaultSteps: 4, maxSteps: 4, acceptsNumOutputs: true, singleOutput: false }),
  flux('flux-dev', { defaultSteps: 28, maxSteps: 50, acceptsNumOutputs: true, singleOutput: false }),
  flux('flux-1.1-pro', { defaultSteps: 25, maxSteps: null, acceptsNumOutputs: false, singleOutput: true }),
  {
    owner: 'stability-ai',
    name: 'sdxl',
    // The public SDXL version on Replicate, so code written against the simulator runs unchanged.
    version: '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b',
    family: 'sdxl',
    defaultSteps: 50,
    maxSteps: 500,
    acceptsNumOutputs: true,
    singleOutput: false,
  },
];

export function modelRef(model: ModelSpec): string {
  return `${model.owner}/${model.name}`;
}

export function findModel(owner: string, name: string): ModelSpec | undefined {
  return KNOWN_MODELS.find((m) => m.owner === owner && m.name === name);
}

/**
 * Resolves the `version` field of POST /v1/predictions: a 64-hex version id,
 * `owner/name:version`, or (official models) plain `owner/name`.
 */
export function findModelByVersionRef(ref: string): ModelSpec | undefined {
  const withVersion = /^([\w.-]+)\/([\w.-]+):([0-9a-f]{64})$/.exec(ref);
  if (withVersion !== null) {
    const model = findModel(withVersion[1] ?? '', withVersion[2] ?? '');
    return model !== undefined && model.version === withVersion[3] ? model : undefined;
  }
  if (/^[0-9a-f]{64}$/.test(ref)) return KNOWN_MODELS.find((m) => m.version === ref);
  const plain = /^([\w.-]+)\/([\w.-]+)$/.exec(ref);
  if (plain !== null) return findModel(plain[1] ?? '', plain[2] ?? '');
  return undefined;
}

/**
 * Deployments: an explicit map "owner/name" → model ref wins; otherwise a deployment whose name
 * equals a known model's name (e.g. `acme/flux-schnell`) runs that model.
 */
export function findModelForDeployment(
  owner: string,
  name: string,
  explicit: Readonly<Record<string, string>>,
): ModelSpec | undefined {
  const mapped = explicit[`${owner}/${name}`];
  if (mapped !== undefined) return findModelByVersionRef(mapped);
  return KNOWN_MODELS.find((m) => m.name === name);
}
