import type { ModelSpec } from './models.ts';
import { ASPECT_RATIOS } from './sizes.ts';

// The inputs each simulated model takes, as data: validation reads inputs with it, and
// GET /v1/models publishes it as the version's OpenAPI Input schema, so the two cannot drift.

export const OUTPUT_FORMATS = ['webp', 'jpg', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

interface FieldBase {
  readonly name: string;
  readonly description: string;
}

export type InputField =
  | (FieldBase & { readonly kind: 'string'; readonly required?: boolean; readonly minLength?: number })
  | (FieldBase & { readonly kind: 'integer'; readonly min?: number; readonly max?: number; readonly multipleOf?: number; readonly default?: number })
  | (FieldBase & { readonly kind: 'number'; readonly min?: number; readonly max?: number; readonly default?: number })
  | (FieldBase & { readonly kind: 'boolean'; readonly default?: boolean })
  | (FieldBase & { readonly kind: 'enum'; readonly values: readonly string[]; readonly default: string });

const MAX_SEED = 2 ** 53 - 1;

/** Every input the model takes, in the order Replicate's schemas list them (x-order). */
export function inputFields(model: ModelSpec): InputField[] {
  const fields: InputField[] = [
    { name: 'prompt', kind: 'string', required: true, minLength: 1, description: 'Prompt for generated image' },
    { name: 'seed', kind: 'integer', min: model.family === 'sdxl' ? 0 : -MAX_SEED, max: MAX_SEED, description: 'Random seed. Set for reproducible generation' },
  ];
  if (model.acceptsNumOutputs) fields.push({ name: 'num_outputs', kind: 'integer', min: 1, max: 4, default: 1, description: 'Number of outputs to generate' });
  if (model.maxSteps !== null) {
    fields.push({ name: 'num_inference_steps', kind: 'integer', min: 1, max: model.maxSteps, default: model.defaultSteps, description: 'Number of denoising steps' });
  }
  if (model.family === 'sdxl') {
    fields.push(
      { name: 'width', kind: 'integer', min: 256, max: 1536, multipleOf: 8, default: 1024, description: 'Width of output image' },
      { name: 'height', kind: 'integer', min: 256, max: 1536, multipleOf: 8, default: 1024, description: 'Height of output image' },
      { name: 'negative_prompt', kind: 'string', description: 'Input Negative Prompt' },
      { name: 'guidance_scale', kind: 'number', min: 1, max: 50, default: 7.5, description: 'Scale for classifier-free guidance' },
    );
    return fields;
  }
  fields.push({ name: 'aspect_ratio', kind: 'enum', values: ASPECT_RATIOS, default: '1:1', description: 'Aspect ratio for the generated image' });
  if (model.acceptsNumOutputs) fields.push({ name: 'megapixels', kind: 'enum', values: ['1', '0.25'], default: '1', description: 'Approximate number of megapixels for generated image' });
  fields.push(
    { name: 'output_format', kind: 'enum', values: OUTPUT_FORMATS, default: 'webp', description: 'Format of the output images' },
    { name: 'output_quality', kind: 'integer', min: 0, max: 100, default: 80, description: 'Quality when saving the output images, from 0 to 100. Not relevant for .png outputs' },
    { name: 'go_fast', kind: 'boolean', default: true, description: 'Run faster predictions with model optimized for speed' },
    { name: 'disable_safety_checker', kind: 'boolean', default: false, description: 'Disable safety checker for generated images' },
  );
  if (model.name === 'flux-dev') fields.push({ name: 'guidance', kind: 'number', min: 0, max: 10, default: 3, description: 'Guidance for generated image' });
  if (model.name === 'flux-1.1-pro') {
    fields.push(
      { name: 'safety_tolerance', kind: 'integer', min: 1, max: 6, default: 2, description: 'Safety tolerance, 1 is most strict and 6 is most permissive' },
      { name: 'prompt_upsampling', kind: 'boolean', default: false, description: 'Automatically modify the prompt for more creative generation' },
    );
  }
  return fields;
}

function titleOf(name: string): string {
  return name
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}

/** The model version's OpenAPI schema as Replicate publishes it (only the Input and Output parts). */
export function openApiSchema(model: ModelSpec): Record<string, unknown> {
  const fields = inputFields(model);
  const properties: Record<string, Record<string, unknown>> = {};
  fields.forEach((field, order) => {
    const property: Record<string, unknown> = { title: titleOf(field.name), 'x-order': order, description: field.description };
    switch (field.kind) {
      case 'string':
        Object.assign(property, { type: 'string' }, field.minLength === undefined ? {} : { minLength: field.minLength });
        break;
      case 'integer':
      case 'number':
        Object.assign(
          property,
          { type: field.kind },
          field.min === undefined ? {} : { minimum: field.min },
          field.max === undefined ? {} : { maximum: field.max },
          'multipleOf' in field && field.multipleOf !== undefined ? { multipleOf: field.multipleOf } : {},
          field.default === undefined ? {} : { default: field.default },
        );
        break;
      case 'boolean':
        Object.assign(property, { type: 'boolean' }, field.default === undefined ? {} : { default: field.default });
        break;
      case 'enum':
        Object.assign(property, { type: 'string', enum: [...field.values], default: field.default });
        break;
    }
    properties[field.name] = property;
  });
  const uri = { type: 'string', format: 'uri' };
  return {
    openapi: '3.0.2',
    info: { title: 'Cog', version: '0.1.0' },
    components: {
      schemas: {
        Input: { type: 'object', title: 'Input', required: fields.filter((f) => f.kind === 'string' && f.required === true).map((f) => f.name), properties },
        Output: model.singleOutput ? { ...uri, title: 'Output' } : { type: 'array', items: uri, title: 'Output' },
      },
    },
  };
}
