// What makes two requests the same for the cache: the provider input they would send. Platforms,
// formats and crop are not part of it (they only shape the variants Kiln renders afterwards),
// so a request can be served from an earlier one's original image with variants of its own. An
// input image stands in it by its content (the SHA-256 of its bytes), not by the URL the
// provider reads it from: that URL changes when the file is uploaded again, the image does not.
import { hash } from 'node:crypto';
import { modelDefinition, type ModelId, type ModelRequest } from './models.ts';

/**
 * How a request may be served from an identical one of its tenant:
 * - default: when it names a seed (without one it asks for a new random image);
 * - reuse-unseeded: even without a seed (any image for this prompt will do);
 * - off: never; it always calls the provider (its result may still serve later requests).
 */
export const CACHE_MODES = ['default', 'reuse-unseeded', 'off'] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

/** `deterministic`: the model takes no seed, so the same input asks for the same image (an upscale, a background removal). */
export function mayReuse(mode: CacheMode, seed: number | null, deterministic = false): boolean {
  return mode === 'reuse-unseeded' || (mode === 'default' && (seed !== null || deterministic));
}

/** How an input image stands in a fingerprint: by its bytes' SHA-256 (hex). */
export const imageFingerprint = (contentHash: string): string => `sha256:${contentHash}`;

/**
 * sha256 (hex) of the model's route and the input its buildInput makes, as canonical JSON;
 * `inputImageHash`: the input image's content hash; `referenceHashes`: the reference images', in order.
 */
export function providerFingerprint(model: ModelId, request: ModelRequest, inputImageHash: string | null = null, referenceHashes: readonly string[] = []): string {
  const definition = modelDefinition(model);
  const input = definition.buildInput(request, inputImageHash === null ? null : imageFingerprint(inputImageHash), referenceHashes.map(imageFingerprint));
  return hash('sha256', canonicalJson({ route: definition.route, input }), 'hex');
}

/**
 * JSON with object keys sorted, so two equal values compare equal whatever their key order.
 * Written out directly (it is on every request's path); the same text JSON.stringify gives
 * once keys are sorted: undefined members left out, undefined in arrays as null.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? 'null';
}

function canonical(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if ('toJSON' in value && typeof value.toJSON === 'function') return canonical(value.toJSON());
  if (Array.isArray(value)) return `[${value.map((item: unknown) => canonical(item) ?? 'null').join(',')}]`;
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const text = canonical(record[key]);
    if (text !== undefined) members.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${members.join(',')}}`;
}
