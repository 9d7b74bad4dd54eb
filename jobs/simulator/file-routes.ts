import { canWrite, headerValue, isPlainObject, sendJson } from './http.ts';
import { NOT_FOUND, payloadTooLarge, sendProblem, type Problem } from './problems.ts';
import { param, type Handler } from './routes.ts';
import type { InvalidField } from './validation.ts';

// The Files API: POST /v1/files (multipart/form-data: `content`, optional `filename`, `type` and
// `metadata`), GET and DELETE /v1/files/{id}, and GET /v1/files/{id}/download for the bytes.

const MAX_FILENAME_BYTES = 255;
/** Room for the multipart framing around a file of the largest allowed size. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

const FILE_NOT_FOUND: Problem = { ...NOT_FOUND, detail: 'File not found' };

/** Replicate says "Files must be less than 100MB in size". */
function tooLarge(maxBytes: number): Problem {
  const mib = maxBytes / (1024 * 1024);
  return payloadTooLarge(`Files must be less than ${Number.isInteger(mib) ? `${mib}MB` : `${maxBytes} bytes`} in size`);
}

function invalid(fields: InvalidField[]): Problem {
  return { title: 'Input validation failed', detail: fields.map((f) => `- ${f.field}: ${f.description}`).join('\n'), status: 422, invalid_fields: fields };
}

/** A form field as text, whether it came as a plain value or as a part with its own type (the JS client sends metadata so). */
async function textOf(value: ReturnType<FormData['get']>): Promise<string | undefined> {
  if (value === null) return undefined;
  return typeof value === 'string' ? value : value.text();
}

export const createFile: Handler = async ({ ctx, req, res, body }) => {
  const raw = await body();
  if (!raw.ok) {
    return sendProblem(res, raw.problem.status === 413 ? tooLarge(ctx.options.maxFileBytes) : raw.problem);
  }
  const contentType = headerValue(req, 'content-type') ?? '';
  if (!/^multipart\/form-data;/i.test(contentType)) {
    return sendProblem(res, { title: 'Unsupported media type', detail: 'POST /v1/files takes multipart/form-data.', status: 415 });
  }
  let form: FormData;
  try {
    form = await new Response(raw.bytes, { headers: { 'content-type': contentType } }).formData();
  } catch {
    return sendProblem(res, { title: 'Bad request', detail: 'The multipart body could not be read.', status: 400 });
  }

  const errors: InvalidField[] = [];
  const content = form.get('content');
  if (content === null || typeof content === 'string') errors.push({ type: 'required', field: '(root)', description: 'content is required' });
  const filename = (await textOf(form.get('filename'))) ?? (content !== null && typeof content !== 'string' ? content.name : '');
  if (Buffer.byteLength(filename) > MAX_FILENAME_BYTES) errors.push({ type: 'string_lte', field: 'filename', description: `String length must be less than or equal to ${MAX_FILENAME_BYTES}` });
  let metadata: Record<string, unknown> = {};
  const metadataText = await textOf(form.get('metadata'));
  if (metadataText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(metadataText);
    } catch {
      parsed = undefined;
    }
    if (isPlainObject(parsed)) metadata = parsed;
    else errors.push({ type: 'invalid_type', field: 'metadata', description: 'Invalid type. Expected: object (JSON)' });
  }
  if (errors.length > 0 || content === null || typeof content === 'string') return sendProblem(res, invalid(errors));

  const bytes = Buffer.from(await content.arrayBuffer());
  if (bytes.length > ctx.options.maxFileBytes) return sendProblem(res, tooLarge(ctx.options.maxFileBytes));
  const type = (await textOf(form.get('type'))) || content.type || 'application/octet-stream';
  const file = await ctx.files.create({ name: filename, contentType: type, bytes, metadata });
  sendJson(res, 201, ctx.files.toJson(file, ctx.baseUrl()));
};

export const getFile: Handler = (request) => {
  const file = request.ctx.files.get(param(request, 0));
  if (file === undefined) return sendProblem(request.res, FILE_NOT_FOUND);
  sendJson(request.res, 200, request.ctx.files.toJson(file, request.ctx.baseUrl()));
};

export const deleteFile: Handler = async (request) => {
  const { res } = request;
  if (!(await request.ctx.files.delete(param(request, 0)))) return sendProblem(res, FILE_NOT_FOUND);
  if (canWrite(res)) res.writeHead(204).end();
};

/** The bytes. Replicate signs download URLs for the file's owner; here the API token is enough. */
export const downloadFile: Handler = async (request) => {
  const { ctx, res } = request;
  const id = param(request, 0);
  const file = ctx.files.get(id);
  const bytes = file === undefined ? undefined : await ctx.files.read(id);
  if (file === undefined || bytes === undefined) return sendProblem(res, FILE_NOT_FOUND);
  if (!canWrite(res)) return;
  res.writeHead(200, { 'content-type': file.contentType, 'content-length': String(bytes.length), etag: `"${file.md5}"` });
  res.end(bytes);
};
