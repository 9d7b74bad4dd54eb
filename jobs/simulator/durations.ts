// Parsers for the two request headers that carry timing: `Cancel-After` (Go durations) and `Prefer: wait`.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const SEGMENT_SOURCE = String.raw`(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)`;

/**
 * Parses a Go-style duration ("30s", "5m", "1h30m", "1.5s", "250ms") into milliseconds.
 * Returns null for anything malformed or not positive.
 */
export function parseGoDuration(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const segment = new RegExp(SEGMENT_SOURCE, 'y'); // sticky: segments must follow each other
  let total = 0;
  let consumed = 0;
  for (let match = segment.exec(trimmed); match !== null; match = segment.exec(trimmed)) {
    const [whole, amount, unit] = match;
    const factor = unit === undefined ? undefined : UNIT_MS[unit];
    if (amount === undefined || factor === undefined) return null;
    total += Number(amount) * factor;
    consumed += whole.length;
  }
  if (consumed !== trimmed.length || !Number.isFinite(total) || total <= 0) return null;
  return total;
}

/**
 * `Cancel-After` as Replicate reads it: a Go-style duration, or a bare number of seconds
 * ("30" is "30s"). Returns milliseconds, or null for anything malformed or not positive.
 * The 5 s minimum is the caller's to enforce (it is an option: see minCancelAfterMs).
 */
export function parseCancelAfter(text: string): number | null {
  const trimmed = text.trim();
  if (/^(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) {
    const seconds = Number(trimmed);
    return seconds > 0 ? seconds * 1000 : null;
  }
  return parseGoDuration(trimmed);
}

export const MAX_PREFER_WAIT_SECONDS = 60;

export type PreferWait =
  | { kind: 'none' }
  /** `applied` is what the answer's Preference-Applied header echoes: `wait` or `wait=n`. */
  | { kind: 'wait'; seconds: number; applied: string }
  | { kind: 'invalid'; preference: string };

/**
 * Reads `Prefer: wait` (60 s) or `Prefer: wait=n` (n from 1 to 60, as Replicate's schema says)
 * from a Prefer header that may list several preferences. Any other wait value is invalid.
 */
export function parsePreferWait(header: string | undefined): PreferWait {
  for (const part of header?.split(',') ?? []) {
    const preference = part.split(';')[0]?.trim() ?? '';
    const match = /^wait(?:\s*=\s*(.*))?$/i.exec(preference);
    if (match === null) continue;
    if (match[1] === undefined) return { kind: 'wait', seconds: MAX_PREFER_WAIT_SECONDS, applied: 'wait' };
    const value = match[1].trim().replace(/^"(.*)"$/, '$1');
    const seconds = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!(seconds >= 1 && seconds <= MAX_PREFER_WAIT_SECONDS)) return { kind: 'invalid', preference };
    return { kind: 'wait', seconds, applied: `wait=${seconds}` };
  }
  return { kind: 'none' };
}
