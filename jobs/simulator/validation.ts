import type { ImageOperation } from './image-operations.ts';
import { inputFields, MATCH_INPUT_IMAGE, OUTPUT_FORMATS, type InputField, type OutputFormat } from './input-schema.ts';
import type { ModelSpec } from './models.ts';
import { dimensionsForRatio, fluxDimensions, isAspectRatio } from './sizes.ts';

// Input validation against the model's input fields (input-schema.ts), with Replicate's error
// shape: JSON-schema style messages, one entry per field. Unknown input fields are ignored, as
// on Replicate.

export { OUTPUT_FORMATS, type OutputFormat } from './input-schema.ts';

export interface GenerationParams {
  /** "" for models without a prompt (the upscalers, background removal). */
  readonly prompt: string;
  /** null: the simulator picks one when the prediction is created. */
  readonly seed: number | null;
  /** The text-to-image size; an image operation's output size follows its input (PreparedImage). */
  readonly width: number;
  readonly height: number;
  readonly outputFormat: OutputFormat;
  readonly outputQuality: number;
  readonly numOutputs: number;
  readonly steps: number;
  /** What to do with an input image; null for text-to-image. */
  readonly image: ImageOperation | null;
}

export interface InvalidField {
  type: string;
  field: string;
  description: string;
}

export type ValidationResult = { ok: true; params: GenerationParams } | { ok: false; invalidFields: InvalidField[] };

type Value = string | number | boolean | readonly string[];

/** WebP quality of recraft-crisp-upscale's output (it has no quality input). */
const CRISP_WEBP_QUALITY = 90;
/** JPEG quality of flux-kontext-pro's and nano-banana's `jpg` output (they have no quality input). */
const KONTEXT_JPEG_QUALITY = 95;

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Checks one field; returns its value (the default when absent, if any) or the error. */
function readField(field: InputField, value: unknown): { value: Value | undefined } | { error: InvalidField } {
  const at = `input.${field.name}`;
  const fail = (type: string, description: string) => ({ error: { type, field: at, description } });
  const typeError = (expected: string) => fail('invalid_type', `Invalid type. Expected: ${expected}, given: ${jsonTypeOf(value)}`);
  if (value === undefined) {
    // A missing property is reported on the object that lacks it, as JSON-schema validators do.
    if ((field.kind === 'string' || field.kind === 'uri') && field.required === true) return { error: { type: 'required', field: 'input', description: `${field.name} is required` } };
    return { value: 'default' in field ? field.default : undefined };
  }
  switch (field.kind) {
    case 'string':
      if (typeof value !== 'string') return typeError('string');
      if (field.minLength !== undefined && value.trim().length < field.minLength) {
        return fail('string_gte', `String length must be greater than or equal to ${field.minLength}`);
      }
      return { value };
    case 'uri':
      if (typeof value !== 'string') return typeError('string');
      // gojsonschema's "uri": anything that parses as an absolute URI (http(s), data:, …).
      return URL.canParse(value) ? { value } : fail('format', "Does not match format 'uri'");
    case 'uri-list': {
      if (!Array.isArray(value)) return typeError('array');
      if (value.length > field.maxItems) return fail('array_max_items', `Array must have at most ${field.maxItems} items`);
      // Each item is checked as a uri field, under its index.
      const items: unknown[] = value;
      const bad = items.findIndex((item) => typeof item !== 'string' || !URL.canParse(item));
      if (bad < 0) return { value: items.filter((item): item is string => typeof item === 'string') };
      const item = items[bad];
      const itemAt = `${at}.${bad}`;
      return typeof item === 'string'
        ? { error: { type: 'format', field: itemAt, description: "Does not match format 'uri'" } }
        : { error: { type: 'invalid_type', field: itemAt, description: `Invalid type. Expected: string, given: ${jsonTypeOf(item)}` } };
    }
    case 'integer':
    case 'number': {
      const isInteger = field.kind === 'integer';
      if (typeof value !== 'number' || (isInteger ? !Number.isInteger(value) : !Number.isFinite(value))) return typeError(field.kind);
      if (field.min !== undefined && value < field.min) return fail('number_gte', `Must be greater than or equal to ${field.min}`);
      if (field.max !== undefined && value > field.max) return fail('number_lte', `Must be less than or equal to ${field.max}`);
      if ('multipleOf' in field && field.multipleOf !== undefined && value % field.multipleOf !== 0) return fail('multiple_of', `Must be a multiple of ${field.multipleOf}`);
      return { value };
    }
    case 'boolean':
      return typeof value === 'boolean' ? { value } : typeError('boolean');
    case 'enum':
      if (typeof value === 'string' && field.values.includes(value)) return { value };
      return fail('enum', `${at} must be one of the following: ${field.values.map((v) => `"${v}"`).join(', ')}`);
  }
}

/** Maxima that hold only while another input is given (kontext's safety_tolerance with an input image). */
function checkConditionalMaxima(fields: readonly InputField[], input: Readonly<Record<string, unknown>>, values: ReadonlyMap<string, Value>): InvalidField[] {
  const errors: InvalidField[] = [];
  for (const field of fields) {
    if (field.kind !== 'integer' || field.maxWhenGiven === undefined) continue;
    const value = values.get(field.name);
    const { field: other, max } = field.maxWhenGiven;
    if (input[other] !== undefined && typeof value === 'number' && value > max) {
      errors.push({ type: 'number_lte', field: `input.${field.name}`, description: `Must be less than or equal to ${max} when ${other} is given` });
    }
  }
  return errors;
}

export function validateInput(model: ModelSpec, input: Readonly<Record<string, unknown>>, imageSize: number): ValidationResult {
  const errors: InvalidField[] = [];
  const values = new Map<string, Value>();
  const fields = inputFields(model);
  for (const field of fields) {
    const read = readField(field, input[field.name]);
    if ('error' in read) errors.push(read.error);
    else if (read.value !== undefined) values.set(field.name, read.value);
  }
  errors.push(...checkConditionalMaxima(fields, input, values));
  if (errors.length > 0) return { ok: false, invalidFields: errors };

  const number = (name: string, fallback: number): number => {
    const value = values.get(name);
    return typeof value === 'number' ? value : fallback;
  };
  const text = (name: string): string | undefined => {
    const value = values.get(name);
    return typeof value === 'string' ? value : undefined;
  };
  const list = (name: string): readonly string[] => {
    const value = values.get(name);
    return Array.isArray(value) ? value : [];
  };
  const flag = (name: string, fallback: boolean): boolean => {
    const value = values.get(name);
    return typeof value === 'boolean' ? value : fallback;
  };
  const seed = values.get('seed');
  const common = {
    prompt: text('prompt') ?? '',
    seed: typeof seed === 'number' ? seed : null,
    numOutputs: number('num_outputs', 1),
    steps: number('num_inference_steps', model.defaultSteps),
    image: null,
  };
  const square = fluxDimensions('1:1', imageSize);
  const ok = (params: GenerationParams): ValidationResult => ({ ok: true, params });
  switch (model.family) {
    case 'sdxl':
      // SDXL always writes PNG.
      return ok({ ...common, width: number('width', 1024), height: number('height', 1024), outputFormat: 'png', outputQuality: 100 });
    case 'flux': {
      const ratio = text('aspect_ratio');
      const megapixels = text('megapixels') === '0.25' ? '0.25' : '1';
      const { width, height } = fluxDimensions(isAspectRatio(ratio) ? ratio : '1:1', imageSize, megapixels);
      const format = OUTPUT_FORMATS.find((f) => f === text('output_format')) ?? 'webp';
      const url = text('image');
      const image: ImageOperation | null = url === undefined ? null : { kind: 'img2img', field: 'image', url, strength: number('prompt_strength', 0.8) };
      return ok({ ...common, width, height, outputFormat: format, outputQuality: number('output_quality', 80), image });
    }
    case 'kontext': {
      const ratio = text('aspect_ratio') ?? MATCH_INPUT_IMAGE;
      // Without an input image there is nothing to match; the simulator makes a square then.
      const { width, height } = dimensionsForRatio(ratio, imageSize) ?? square;
      const url = text('input_image');
      const image: ImageOperation | null = url === undefined ? null : { kind: 'edit', field: 'input_image', url, matchInput: ratio === MATCH_INPUT_IMAGE };
      return ok({ ...common, width, height, outputFormat: text('output_format') === 'jpg' ? 'jpg' : 'png', outputQuality: KONTEXT_JPEG_QUALITY, image });
    }
    case 'nano-banana': {
      const ratio = text('aspect_ratio') ?? MATCH_INPUT_IMAGE;
      const { width, height } = dimensionsForRatio(ratio, imageSize) ?? square;
      const urls = list('image_input');
      // No input images: a text-to-image picture of the asked ratio (a square for match_input_image).
      const image: ImageOperation | null = urls.length === 0 ? null : { kind: 'compose', field: 'image_input', urls, matchInput: ratio === MATCH_INPUT_IMAGE };
      return ok({ ...common, width, height, outputFormat: text('output_format') === 'png' ? 'png' : 'jpg', outputQuality: KONTEXT_JPEG_QUALITY, image });
    }
    case 'esrgan':
      // The model writes PNG (alpha kept).
      return ok({ ...common, ...square, outputFormat: 'png', outputQuality: 100, image: { kind: 'upscale', field: 'image', url: text('image') ?? '', scale: number('scale', 4) } });
    case 'crisp-upscale':
      return ok({ ...common, ...square, outputFormat: 'webp', outputQuality: CRISP_WEBP_QUALITY, image: { kind: 'crisp-upscale', field: 'image', url: text('image') ?? '' } });
    case 'remove-background': {
      // `image` wins when both are given (a choice; Replicate documents no order).
      const field = text('image') !== undefined ? 'image' : 'image_url';
      const url = text(field) ?? null;
      return ok({ ...common, ...square, outputFormat: 'png', outputQuality: 100, image: { kind: 'remove-background', field, url, preserveAlpha: flag('preserve_alpha', true) } });
    }
  }
}
