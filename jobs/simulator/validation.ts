import { inputFields, OUTPUT_FORMATS, type InputField, type OutputFormat } from './input-schema.ts';
import type { ModelSpec } from './models.ts';
import { fluxDimensions, isAspectRatio } from './sizes.ts';

// Input validation against the model's input fields (input-schema.ts), with Replicate's error
// shape: JSON-schema style messages, one entry per field. Unknown input fields are ignored, as
// on Replicate.

export { OUTPUT_FORMATS, type OutputFormat } from './input-schema.ts';

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

type Value = string | number | boolean;

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
    if (field.kind === 'string' && field.required === true) return { error: { type: 'required', field: 'input', description: `${field.name} is required` } };
    return { value: 'default' in field ? field.default : undefined };
  }
  switch (field.kind) {
    case 'string':
      if (typeof value !== 'string') return typeError('string');
      if (field.minLength !== undefined && value.trim().length < field.minLength) {
        return fail('string_gte', `String length must be greater than or equal to ${field.minLength}`);
      }
      return { value };
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

export function validateInput(model: ModelSpec, input: Readonly<Record<string, unknown>>, imageSize: number): ValidationResult {
  const errors: InvalidField[] = [];
  const values = new Map<string, Value>();
  for (const field of inputFields(model)) {
    const read = readField(field, input[field.name]);
    if ('error' in read) errors.push(read.error);
    else if (read.value !== undefined) values.set(field.name, read.value);
  }
  if (errors.length > 0) return { ok: false, invalidFields: errors };

  const number = (name: string, fallback: number): number => {
    const value = values.get(name);
    return typeof value === 'number' ? value : fallback;
  };
  const text = (name: string): string | undefined => {
    const value = values.get(name);
    return typeof value === 'string' ? value : undefined;
  };
  const seed = values.get('seed');
  const common = {
    prompt: text('prompt') ?? '',
    seed: typeof seed === 'number' ? seed : null,
    numOutputs: number('num_outputs', 1),
    steps: number('num_inference_steps', model.defaultSteps),
  };
  if (model.family === 'sdxl') {
    // SDXL always writes PNG.
    return { ok: true, params: { ...common, width: number('width', 1024), height: number('height', 1024), outputFormat: 'png', outputQuality: 100 } };
  }
  const ratio = text('aspect_ratio');
  const megapixels = text('megapixels') === '0.25' ? '0.25' : '1';
  const { width, height } = fluxDimensions(isAspectRatio(ratio) ? ratio : '1:1', imageSize, megapixels);
  const format = OUTPUT_FORMATS.find((f) => f === text('output_format')) ?? 'webp';
  return { ok: true, params: { ...common, width, height, outputFormat: format, outputQuality: number('output_quality', 80) } };
}
