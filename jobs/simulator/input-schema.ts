import type { ModelSpec } from './models.ts';
import { ASPECT_RATIOS } from './sizes.ts';

// The inputs each simulated model takes, as data: validation reads inputs with it, and
// GET /v1/models publishes it as the version's OpenAPI Input schema, so the two cannot drift.

export const OUTPUT_FORMATS = ['webp', 'jpg', 'png'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** flux-kontext-pro writes only these. */
export const KONTEXT_OUTPUT_FORMATS = ['jpg', 'png'] as const satisfies readonly OutputFormat[];

/** flux-kontext-pro's aspect ratios: flux's, 2:1 and 1:2, and the default that follows the input image. */
export const MATCH_INPUT_IMAGE = 'match_input_image';
export const KONTEXT_ASPECT_RATIOS = [MATCH_INPUT_IMAGE, '1:1', '16:9', '9:16', '4:3', '3:4', '3:2', '2:3', '4:5', '5:4', '21:9', '9:21', '2:1', '1:2'] as const;

/**
 * nano-banana's aspect ratios: the input's (the default), or one of these. Without an input image
 * the simulator makes a square for match_input_image.
 */
export const NANO_BANANA_ASPECT_RATIOS = [MATCH_INPUT_IMAGE, '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9'] as const;
export const NANO_BANANA_OUTPUT_FORMATS = ['jpg', 'png'] as const satisfies readonly OutputFormat[];
/**
 * Images one nano-banana prediction takes in image_input. Replicate's page says only "supports
 * multiple images" (its successor's says up to 14); the simulator takes 14 and refuses more, as a
 * schema's maxItems would.
 */
export const NANO_BANANA_MAX_IMAGES = 14;

/** Replicate's description of the limit that its schema (0–6) does not express; validation enforces it. */
export const KONTEXT_MAX_SAFETY_WITH_IMAGE = 2;

interface FieldBase {
  readonly name: string;
  readonly description: string;
}

export type InputField =
  | (FieldBase & { readonly kind: 'string'; readonly required?: boolean; readonly minLength?: number })
  /** A file input (cog's Path): a string with format uri — http(s), data: or a Files API URL. */
  | (FieldBase & { readonly kind: 'uri'; readonly required?: boolean })
  /** A list of file inputs (cog's list[Path]), at most `maxItems`; absent: none. */
  | (FieldBase & { readonly kind: 'uri-list'; readonly maxItems: number })
  | (FieldBase & {
      readonly kind: 'integer';
      readonly min?: number;
      readonly max?: number;
      readonly multipleOf?: number;
      readonly default?: number;
      /** A lower maximum while another input is given (kontext's safety_tolerance with input_image). */
      readonly maxWhenGiven?: { readonly field: string; readonly max: number };
    })
  | (FieldBase & { readonly kind: 'number'; readonly min?: number; readonly max?: number; readonly default?: number })
  | (FieldBase & { readonly kind: 'boolean'; readonly default?: boolean })
  | (FieldBase & { readonly kind: 'enum'; readonly values: readonly string[]; readonly default: string });

const MAX_SEED = 2 ** 53 - 1;

const seedField = (min: number): InputField => ({ name: 'seed', kind: 'integer', min, max: MAX_SEED, description: 'Random seed. Set for reproducible generation' });

/** Every input the model takes, in the order Replicate's schemas list them (x-order). */
export function inputFields(model: ModelSpec): InputField[] {
  switch (model.family) {
    case 'flux':
    case 'sdxl':
      return textToImageFields(model);
    case 'kontext':
      return [
        { name: 'prompt', kind: 'string', required: true, minLength: 1, description: 'Text description of what you want to generate, or the instruction on how to edit the given image.' },
        { name: 'input_image', kind: 'uri', description: 'Image to use as reference. Must be jpeg, png, gif, or webp.' },
        { name: 'aspect_ratio', kind: 'enum', values: KONTEXT_ASPECT_RATIOS, default: MATCH_INPUT_IMAGE, description: "Aspect ratio of the generated image. Use 'match_input_image' to match the aspect ratio of the input image." },
        { name: 'prompt_upsampling', kind: 'boolean', default: false, description: 'Automatic prompt improvement' },
        seedField(-MAX_SEED),
        { name: 'output_format', kind: 'enum', values: KONTEXT_OUTPUT_FORMATS, default: 'png', description: 'Output format for the generated image' },
        {
          name: 'safety_tolerance',
          kind: 'integer',
          min: 0,
          max: 6,
          default: 2,
          maxWhenGiven: { field: 'input_image', max: KONTEXT_MAX_SAFETY_WITH_IMAGE },
          description: `Safety tolerance, 0 is most strict and 6 is most permissive. ${KONTEXT_MAX_SAFETY_WITH_IMAGE} is currently the maximum allowed when input images are used.`,
        },
      ];
    case 'nano-banana':
      return [
        { name: 'prompt', kind: 'string', required: true, minLength: 1, description: 'A text description of the image you want to generate' },
        { name: 'image_input', kind: 'uri-list', maxItems: NANO_BANANA_MAX_IMAGES, description: 'Input images to transform or use as reference (supports multiple images)' },
        { name: 'aspect_ratio', kind: 'enum', values: NANO_BANANA_ASPECT_RATIOS, default: MATCH_INPUT_IMAGE, description: 'Aspect ratio of the generated image' },
        { name: 'output_format', kind: 'enum', values: NANO_BANANA_OUTPUT_FORMATS, default: 'jpg', description: 'Format of the output image' },
      ];
    case 'esrgan':
      return [
        { name: 'image', kind: 'uri', required: true, description: 'Input image' },
        { name: 'scale', kind: 'number', min: 0, max: 10, default: 4, description: 'Factor to scale image by' },
        { name: 'face_enhance', kind: 'boolean', default: false, description: 'Run GFPGAN face enhancement along with upscaling' },
      ];
    case 'crisp-upscale':
      return [{ name: 'image', kind: 'uri', required: true, description: 'Image to upscale' }];
    case 'remove-background':
      return [
        { name: 'image', kind: 'uri', description: 'Image file' },
        { name: 'preserve_partial_alpha', kind: 'boolean', default: true, description: '[DEPRECATED] Preserve partial alpha. No longer used in V2 API - use preserve_alpha instead.' },
        { name: 'content_moderation', kind: 'boolean', default: false, description: 'Enable content moderation' },
        { name: 'image_url', kind: 'string', description: 'Image URL' },
        { name: 'preserve_alpha', kind: 'boolean', default: true, description: 'Preserve alpha channel in output. When true, maintains original transparency. When false, output is fully opaque.' },
      ];
  }
}

function textToImageFields(model: ModelSpec): InputField[] {
  const fields: InputField[] = [
    { name: 'prompt', kind: 'string', required: true, minLength: 1, description: 'Prompt for generated image' },
    seedField(model.family === 'sdxl' ? 0 : -MAX_SEED),
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
  if (model.name === 'flux-dev') {
    fields.push(
      { name: 'image', kind: 'uri', description: 'Input image for image to image mode. The aspect ratio of your output will match this image' },
      { name: 'prompt_strength', kind: 'number', min: 0, max: 1, default: 0.8, description: 'Prompt strength when using img2img. 1.0 corresponds to full destruction of information in image' },
    );
  }
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

export function isRequired(field: InputField): boolean {
  return (field.kind === 'string' || field.kind === 'uri') && field.required === true;
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
      case 'uri':
        Object.assign(property, { type: 'string', format: 'uri' });
        break;
      case 'uri-list':
        Object.assign(property, { type: 'array', items: { type: 'string', format: 'uri' }, maxItems: field.maxItems, default: [] });
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
        Input: { type: 'object', title: 'Input', required: fields.filter(isRequired).map((f) => f.name), properties },
        Output: model.singleOutput ? { ...uri, title: 'Output' } : { type: 'array', items: uri, title: 'Output' },
      },
    },
  };
}
