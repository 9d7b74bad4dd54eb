import type { ModelSpec } from './models.ts';
import { ASPECT_RATIOS, fluxDimensions, isAspectRatio } from './sizes.ts';

// Input validation with Replicate's error shape (JSON-schema style messages, one entry per field).
// Unknown input fields are ignored, as on Replicate.

export const OUTPUT_FORMATS = ['webp', 'jpg', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface GenerationParams {
  readonly prompt: string;
  /** null: the simulator picks one when the prediction is created. */
  readonly seed: number | null;
  readonly width: number;
  readonly height: number;
  readonly outputFormat: OutputFormat;
  readonly outputQuality: number;
  readonly numOutputs: number;
  readonly steps: number;
}

export interface InvalidField {
  type: string;
  field: string;
  description: string;
}

export type ValidationResult = { ok: true; params: GenerationParams } | { ok: false; invalidFields: InvalidField[] };

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Collects field errors while reading typed values with defaults. */
class InputReader {
  readonly errors: InvalidField[] = [];
  readonly #input: Readonly<Record<string, unknown>>;

  constructor(input: Readonly<Record<string, unknown>>) {
    this.#input = input;
  }

  #fail(type: string, key: string, description: string): undefined {
    this.errors.push({ type, field: `input.${key}`, description });
    return undefined;
  }

  #typeError(key: string, expected: string, value: unknown): undefined {
    return this.#fail('invalid_type', key, `Invalid type. Expected: ${expected}, given: ${jsonTypeOf(value)}`);
  }

  string(key: string, options: { required?: boolean; minLength?: number } = {}): string | undefined {
    const value = this.#input[key];
    if (value === undefined) {
      // A missing property is reported on the object that lacks it, as JSON-schema validators do.
      if (options.required !== true) return undefined;
      this.errors.push({ type: 'required', field: 'input', description: `${key} is required` });
      return undefined;
    }
    if (typeof value !== 'string') return this.#typeError(key, 'string', value);
    if (options.minLength !== undefined && value.trim().length < options.minLength) {
      return this.#fail('string_gte', key, `String length must be greater than or equal to ${options.minLength}`);
    }
    return value;
  }

  integer(key: string, range: { min?: number; max?: number; multipleOf?: number } = {}): number | undefined {
    const value = this.#input[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) return this.#typeError(key, 'integer', value);
    return this.#checkRange(key, value, range);
  }

  number(key: string, range: { min?: number; max?: number } = {}): number | undefined {
    const value = this.#input[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.#typeError(key, 'number', value);
    return this.#checkRange(key, value, range);
  }

  boolean(key: string): boolean | undefined {
    const value = this.#input[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') return this.#typeError(key, 'boolean', value);
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const value = this.#input[key];
    if (value === undefined) return undefined;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    const list = allowed.map((a) => `"${a}"`).join(', ');
    return this.#fail('enum', key, `input.${key} must be one of the following: ${list}`);
  }

  #checkRange(key: string, value: number, range: { min?: number; max?: number; multipleOf?: number }): number | undefined {
    if (range.min !== undefined && value < range.min) {
      return this.#fail('number_gte', key, `Must be greater than or equal to ${range.min}`);
    }
    if (range.max !== undefined && value > range.max) {
      return this.#fail('number_lte', key, `Must be less than or equal to ${range.max}`);
    }
    if (range.multipleOf !== undefined && value % range.multipleOf !== 0) {
      return this.#fail('multiple_of', key, `Must be a multiple of ${range.multipleOf}`);
    }
    return value;
  }
}

const MAX_SEED = 2 ** 53 - 1;

export function validateInput(model: ModelSpec, input: Readonly<Record<string, unknown>>, imageSize: number): ValidationResult {
  const read = new InputReader(input);
  const prompt = read.string('prompt', { required: true, minLength: 1 });
  const seed = read.integer('seed', { min: model.family === 'sdxl' ? 0 : -MAX_SEED, max: MAX_SEED });
  const numOutputs = model.acceptsNumOutputs ? read.integer('num_outputs', { min: 1, max: 4 }) : 1;
  const steps = model.maxSteps === null ? undefined : read.integer('num_inference_steps', { min: 1, max: model.maxSteps });

  let width: number | undefined;
  let height: number | undefined;
  let outputFormat: OutputFormat | undefined;
  let outputQuality: number | undefined;
  if (model.family === 'sdxl') {
    width = read.integer('width', { min: 256, max: 1536, multipleOf: 8 }) ?? 1024;
    height = read.integer('height', { min: 256, max: 1536, multipleOf: 8 }) ?? 1024;
    read.string('negative_prompt');
    read.number('guidance_scale', { min: 1, max: 50 });
    outputFormat = 'png'; // SDXL always writes PNG.
    outputQuality = 100;
  } else {
    const ratio = read.oneOf('aspect_ratio', ASPECT_RATIOS) ?? '1:1';
    const megapixels = model.acceptsNumOutputs ? read.oneOf('megapixels', ['1', '0.25'] as const) : undefined;
    outputFormat = read.oneOf('output_format', OUTPUT_FORMATS) ?? 'webp';
    outputQuality = read.integer('output_quality', { min: 0, max: 100 }) ?? 80;
    read.boolean('go_fast');
    read.boolean('disable_safety_checker');
    if (model.name === 'flux-dev') read.number('guidance', { min: 0, max: 10 });
    if (model.name === 'flux-1.1-pro') {
      read.integer('safety_tolerance', { min: 1, max: 6 });
      read.boolean('prompt_upsampling');
    }
    if (isAspectRatio(ratio)) ({ width, height } = fluxDimensions(ratio, imageSize, megapixels ?? '1'));
  }

  if (read.errors.length > 0 || prompt === undefined || width === undefined || height === undefined) {
    return { ok: false, invalidFields: read.errors };
  }
  return {
    ok: true,
    params: {
      prompt,
      seed: seed ?? null,
      width,
      height,
      outputFormat,
      outputQuality,
      numOutputs: numOutputs ?? 1,
      steps: steps ?? model.defaultSteps,
    },
  };
}
