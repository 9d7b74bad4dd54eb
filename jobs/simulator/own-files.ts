import type { SimulatorContext } from './context.ts';
import { formatOf, renderOutput } from './image-outputs.ts';
import type { OutputFormat } from './validation.ts';

// The files the simulator serves itself: prediction outputs (rendered on first download and
// cached) and, for predictions' input URLs, uploaded files too.

export type OutputFileBytes = { kind: 'file'; bytes: Buffer; format: OutputFormat } | { kind: 'removed' } | { kind: 'missing' };

export async function readOutputFile(ctx: SimulatorContext, id: string, name: string): Promise<OutputFileBytes> {
  const lookup = ctx.engine.outputFile(id, name);
  if (lookup.kind !== 'file') return lookup;
  // Keyed by content, so repeated prompts and inputs (load tests, demos) share one render.
  const bytes = await ctx.renders.get(JSON.stringify(lookup.spec), () => renderOutput(lookup.spec, ctx.inputs));
  return { kind: 'file', bytes, format: formatOf(lookup.spec) };
}

const UPLOADED_FILE = /^\/v1\/files\/([a-z0-9]+)(?:\/download)?$/;
const OUTPUT_FILE = /^\/files\/([a-z0-9]+)\/([\w.-]+)$/;

/**
 * One of the simulator's own URLs given as a prediction's input: an uploaded file (its `urls.get`
 * or download URL — the account's own, so its predictions may read it) or another prediction's
 * output. A string is why it cannot be read.
 */
export async function readOwnFile(ctx: SimulatorContext, path: string): Promise<Buffer | string> {
  const pathname = path.split(/[?#]/, 1)[0] ?? '';
  const uploaded = UPLOADED_FILE.exec(pathname);
  if (uploaded !== null) return (await ctx.files.read(uploaded[1] ?? '')) ?? 'the file does not exist (deleted or expired)';
  const output = OUTPUT_FILE.exec(pathname);
  if (output !== null) {
    const file = await readOutputFile(ctx, output[1] ?? '', output[2] ?? '');
    if (file.kind === 'file') return file.bytes;
    return file.kind === 'removed' ? 'the output file has been deleted' : 'no such output file';
  }
  return 'not a file URL of this API';
}
