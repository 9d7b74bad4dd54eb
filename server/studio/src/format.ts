// How figures read on the page.
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MB`;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export const formatUsd = (usd: number): string => (usd !== 0 && Math.abs(usd) < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`);

export const formatTime = (iso: string): string => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** "in 12 s" / "now" for an estimate. */
export function fromNow(iso: string | null | undefined, now = Date.now()): string | undefined {
  if (!iso) return undefined;
  const seconds = (new Date(iso).getTime() - now) / 1000;
  return seconds <= 0.5 ? 'any moment' : `in ${formatSeconds(seconds)}`;
}
