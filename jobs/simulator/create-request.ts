import { isPlainObject } from './http.ts';
import type { InvalidField } from './validation.ts';
import { DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENTS, type WebhookEvent } from './webhooks.ts';

// The top level of a create body, checked against Replicate's request schemas
// (`schemas_prediction_request` for model and deployment routes, `schemas_version_prediction_request`
// for POST /v1/predictions). Both have `additionalProperties: false`, so an unknown field is a 422.
// Messages and field names are those of the JSON-schema validator Replicate's answers show
// (gojsonschema): "(root)" for the body itself, a dotted path below it.

export type CreateRoute = 'model' | 'version';

const COMMON_FIELDS = ['input', 'stream', 'webhook', 'webhook_events_filter'] as const;
const FIELDS: Record<CreateRoute, readonly string[]> = {
  model: COMMON_FIELDS,
  version: [...COMMON_FIELDS, 'version'],
};

export interface CreateRequest {
  readonly input: Record<string, unknown>;
  /** Only on the version route: `owner/name`, `owner/name:version` or a version id. */
  readonly version: string | null;
  readonly webhook: string | null;
  readonly webhookEvents: ReadonlySet<WebhookEvent>;
}

export type CreateRequestResult = { ok: true; request: CreateRequest } | { ok: false; invalidFields: InvalidField[] };

const ROOT = '(root)';

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function invalidType(field: string, expected: string, value: unknown): InvalidField {
  return { type: 'invalid_type', field, description: `Invalid type. Expected: ${expected}, given: ${jsonType(value)}` };
}

function isWebUrl(value: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

export function readCreateRequest(body: Record<string, unknown>, route: CreateRoute): CreateRequestResult {
  const errors: InvalidField[] = [];
  const allowed = FIELDS[route];
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) errors.push({ type: 'additional_property_not_allowed', field: ROOT, description: `Additional property ${key} is not allowed` });
  }

  const { input } = body;
  if (input === undefined) errors.push({ type: 'required', field: ROOT, description: 'input is required' });
  else if (!isPlainObject(input)) errors.push(invalidType('input', 'object', input));

  let version: string | null = null;
  if (route === 'version') {
    if (body.version === undefined) errors.push({ type: 'required', field: ROOT, description: 'version is required' });
    else if (typeof body.version !== 'string') errors.push(invalidType('version', 'string', body.version));
    else version = body.version;
  }

  if (body.stream !== undefined && typeof body.stream !== 'boolean') errors.push(invalidType('stream', 'boolean', body.stream));

  let webhook: string | null = null;
  if (body.webhook !== undefined) {
    if (typeof body.webhook !== 'string') errors.push(invalidType('webhook', 'string', body.webhook));
    else if (!isWebUrl(body.webhook)) errors.push({ type: 'format', field: 'webhook', description: "Does not match format 'uri'" });
    else webhook = body.webhook;
  }

  let webhookEvents: Set<WebhookEvent> = new Set(DEFAULT_WEBHOOK_EVENTS);
  const filter = body.webhook_events_filter;
  if (filter !== undefined) {
    if (!Array.isArray(filter)) errors.push(invalidType('webhook_events_filter', 'array', filter));
    else {
      webhookEvents = new Set();
      const list = WEBHOOK_EVENTS.map((e) => `"${e}"`).join(', ');
      filter.forEach((item: unknown, i) => {
        const event = WEBHOOK_EVENTS.find((known) => known === item);
        if (event !== undefined) webhookEvents.add(event);
        else errors.push({ type: 'enum', field: `webhook_events_filter.${i}`, description: `webhook_events_filter.${i} must be one of the following: ${list}` });
      });
    }
  }

  if (errors.length > 0 || !isPlainObject(input)) return { ok: false, invalidFields: errors };
  return { ok: true, request: { input, version, webhook, webhookEvents } };
}
