import { createHash } from 'node:crypto';

// The models the simulator knows. Anything else answers 404 like Replicate.

/**
 * What a model does with its input: text-to-image (`flux`, `sdxl`; flux-dev also takes an image to
 * start from), an edit by prompt (`kontext`), an upscale (`esrgan`, `crisp-upscale`) or a
 * background removal (`remove-background`), or a picture made with a list of input images
 * (`nano-banana`). Each family has its own input schema (input-schema.ts).
 */
export type ModelFamily = 'flux' | 'sdxl' | 'kontext' | 'esrgan' | 'crisp-upscale' | 'remove-background' | 'nano-banana';

export interface ModelSpec {
  readonly owner: string;
  readonly name: string;
  /**
   * Official models (Replicate-maintained, run by name) report `version: "hidden"` on their
   * predictions; community models report the version id that ran.
   */
  readonly official: boolean;
  /** 64-hex version ids accepted in POST /v1/predictions as `version`, newest first. */
  readonly versions: readonly [string, ...string[]];
  readonly family: ModelFamily;
  /** Denoising steps shown in the progress logs when the input does not choose them. */
  readonly defaultSteps: number;
  /** Upper bound of `num_inference_steps`, or null when the model has no such input. */
  readonly maxSteps: number | null;
  /** Whether `num_outputs` is an input (flux-1.1-pro has none and makes one image). */
  readonly acceptsNumOutputs: boolean;
  /**
   * flux-1.1-pro, kontext, the upscalers and background removal return a single URI string;
   * flux-schnell, flux-dev and sdxl an array of URIs. Mirrored here so adapters handle both shapes.
   */
  readonly singleOutput: boolean;
  /** As on the model's Replicate page (GET /v1/models). */
  readonly description: string;
}

/** Official models expose no public version hash; the simulator derives a stable fake one (see GET /v1/models). */
function fakeVersion(model: string): string {
  return createHash('sha256').update(`kiln-simulator:${model}`).digest('hex');
}

type ModelTraits = Pick<ModelSpec, 'defaultSteps' | 'maxSteps' | 'acceptsNumOutputs' | 'singleOutput' | 'description'>;

function official(owner: string, name: string, family: ModelFamily, traits: ModelTraits): ModelSpec {
  return { owner, name, official: true, versions: [fakeVersion(`${owner}/${name}`)], family, ...traits };
}

function flux(name: string, traits: ModelTraits): ModelSpec {
  return official('black-forest-labs', name, 'flux', traits);
}

/** One image in, one image out: no num_outputs, no num_inference_steps, a single URI out. */
function imageModel(defaultSteps: number, description: string): ModelTraits {
  return { defaultSteps, maxSteps: null, acceptsNumOutputs: false, singleOutput: true, description };
}

export const KNOWN_MODELS: readonly ModelSpec[] = [
  flux('flux-schnell', { defaultSteps: 4, maxSteps: 4, acceptsNumOutputs: true, singleOutput: false, description: 'The fastest image generation model tailored for local development and personal use' }),
  flux('flux-dev', { defaultSteps: 28, maxSteps: 50, acceptsNumOutputs: true, singleOutput: false, description: 'A 12 billion parameter rectified flow transformer capable of generating images from text descriptions' }),
  flux('flux-1.1-pro', { defaultSteps: 25, maxSteps: null, acceptsNumOutputs: false, singleOutput: true, description: 'Faster, better FLUX Pro. Text-to-image model with excellent image quality, prompt adherence, and output diversity.' }),
  {
    owner: 'stability-ai',
    name: 'sdxl',
    official: false,
    // Public SDXL versions on Replicate (the newest first), so code written against the simulator
    // runs unchanged; Kiln's balanced tier pins the newest.
    versions: ['7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc', '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b'],
    family: 'sdxl',
    defaultSteps: 50,
    maxSteps: 500,
    acceptsNumOutputs: true,
    singleOutput: false,
    description: 'A text-to-image generative AI model that creates beautiful images',
  },
  // Image models. The step counts only pace the progress lines in the logs.
  official('black-forest-labs', 'flux-kontext-pro', 'kontext', imageModel(28, 'A state-of-the-art text-based image editing model that delivers high-quality outputs with excellent prompt following and consistent results for transforming images through natural language')),
  {
    owner: 'nightmareai',
    name: 'real-esrgan',
    official: false,
    // Community model, run by version: its public version ids on Replicate (the newest first), so
    // code pinned against the simulator runs unchanged on Replicate.
    versions: ['f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa', '42fed1c4974146d4d2414e2be2c5277c7fcf05fcc3a73abf41610695738c1d7b'],
    family: 'esrgan',
    ...imageModel(10, 'Real-ESRGAN with optional face correction and adjustable upscale'),
  },
  official('recraft-ai', 'recraft-crisp-upscale', 'crisp-upscale', imageModel(4, 'Designed to make images sharper and cleaner, Crisp upscale increases overall quality, making visuals suitable for web use or print-ready materials.')),
  official('bria', 'remove-background', 'remove-background', imageModel(4, 'Bria RMBG 2.0 enables seamless removal of backgrounds from images, ideal for professional editing tasks.')),
  official('google', 'nano-banana', 'nano-banana', imageModel(20, "Google's latest image editing model in Gemini 2.5")),
];

export function modelRef(model: ModelSpec): string {
  return `${model.owner}/${model.name}`;
}

/** A model and the version of it that runs. */
export interface ModelVersion {
  readonly model: ModelSpec;
  readonly version: string;
}

export function latest(model: ModelSpec): ModelVersion {
  return { model, version: model.versions[0] };
}

/** What a prediction reports as its `version`. */
export function reportedVersion({ model, version }: ModelVersion): string {
  return model.official ? 'hidden' : version;
}

export function findModel(owner: string, name: string): ModelSpec | undefined {
  return KNOWN_MODELS.find((m) => m.owner === owner && m.name === name);
}

/**
 * Resolves the `version` field of POST /v1/predictions: a 64-hex version id,
 * `owner/name:version`, or (official models) plain `owner/name`.
 */
export function findModelByVersionRef(ref: string): ModelVersion | undefined {
  const withVersion = /^([\w.-]+)\/([\w.-]+):([0-9a-f]{64})$/.exec(ref);
  if (withVersion !== null) {
    const model = findModel(withVersion[1] ?? '', withVersion[2] ?? '');
    const version = withVersion[3] ?? '';
    return model !== undefined && model.versions.includes(version) ? { model, version } : undefined;
  }
  if (/^[0-9a-f]{64}$/.test(ref)) {
    const model = KNOWN_MODELS.find((m) => m.versions.includes(ref));
    return model === undefined ? undefined : { model, version: ref };
  }
  const plain = /^([\w.-]+)\/([\w.-]+)$/.exec(ref);
  // Only official models run by bare name; community models need a version.
  const model = plain === null ? undefined : findModel(plain[1] ?? '', plain[2] ?? '');
  return model === undefined || !model.official ? undefined : latest(model);
}

/**
 * Deployments: an explicit map "owner/name" → model ref wins; otherwise a deployment whose name
 * equals a known model's name (e.g. `acme/flux-schnell`) runs that model.
 */
export function findModelForDeployment(
  owner: string,
  name: string,
  explicit: Readonly<Record<string, string>>,
): ModelVersion | undefined {
  const mapped = explicit[`${owner}/${name}`];
  if (mapped !== undefined) {
    // A deployment runs one fixed version, so a mapping to a community model by bare name takes its newest.
    const plain = /^([\w.-]+)\/([\w.-]+)$/.exec(mapped);
    const model = plain === null ? undefined : findModel(plain[1] ?? '', plain[2] ?? '');
    return model !== undefined ? latest(model) : findModelByVersionRef(mapped);
  }
  const model = KNOWN_MODELS.find((m) => m.name === name);
  return model === undefined ? undefined : latest(model);
}
