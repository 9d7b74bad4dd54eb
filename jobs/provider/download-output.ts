// Downloads a prediction's output promptly (Replicate deletes API outputs after an hour).
// Only the provider's own file hosts are fetched, redirects are not followed, and the body
// is capped while it streams, so a hostile URL cannot make us fetch or buffer anything else.
import { PermanentProviderError, TransientProviderError } from './errors.ts';
import type { ImageProvider } from './provider.ts';

export interface DownloadLimits {
  maxBytes: number;
  timeoutMs: number;
}

export async function downloadOutput(provider: ImageProvider, rawUrl: string, limits: DownloadLimits, signal?: AbortSignal): Promise<Buffer> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new PermanentProviderError(`provider returned an invalid output URL`);
  }
  if (!provider.isAllowedOutputUrl(url)) {
    throw new PermanentProviderError(`refusing to download output from ${url.origin}: not a provider file host`);
  }
  const timeoutSignal = AbortSignal.timeout(limits.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeoutSignal]) : timeoutSignal;
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'manual', signal: combined });
  } catch (cause) {
    if (signal?.aborted) throw cause;
    throw new TransientProviderError(`downloading the output failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      publicReason: 'downloading the image from the provider failed',
      ambiguous: false,
      cause,
    });
  }
  if (response.status === 404 || response.status === 410) {
    throw new PermanentProviderError(`the provider no longer has the output (${response.status}); it may have expired`, { status: response.status });
  }
  if (response.status === 429 || response.status >= 500) {
    throw new TransientProviderError(`downloading the output failed with ${response.status}`, {
      publicReason: `downloading the image from the provider failed (${response.status})`,
      ambiguous: false,
      status: response.status,
    });
  }
  if (!response.ok || !response.body) {
    throw new PermanentProviderError(`downloading the output failed with ${response.status}`, { status: response.status });
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limits.maxBytes) {
    await response.body.cancel();
    throw new PermanentProviderError(`output is ${declared} bytes, over the ${limits.maxBytes}-byte limit`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += chunk.byteLength;
      if (total > limits.maxBytes) throw new PermanentProviderError(`output exceeds the ${limits.maxBytes}-byte limit`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof PermanentProviderError || signal?.aborted) throw error;
    throw new TransientProviderError(`downloading the output was interrupted: ${error instanceof Error ? error.message : String(error)}`, {
      publicReason: 'downloading the image from the provider was interrupted',
      ambiguous: false,
      cause: error,
    });
  }
  return Buffer.concat(chunks);
}
