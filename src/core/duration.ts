// Durations in plugin options: Go-style strings ("1s", "500ms", "1m30s") or an
// integer number of milliseconds. Returns milliseconds, or a problem text.
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

export function parseDurationMs(value: unknown): { ms: number } | { problem: string } {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { problem: `must be a duration like "500ms" or an integer number of milliseconds, got ${value}` };
    return { ms: value };
  }
  if (typeof value !== 'string') return { problem: `must be a duration like "500ms", got a ${Array.isArray(value) ? 'list' : typeof value}` };
  const text = value.trim();
  if (/^\d+$/.test(text)) return { ms: Number(text) };
  let total = 0;
  let pos = 0;
  PART.lastIndex = 0;
  while (pos < text.length) {
    PART.lastIndex = pos;
    const m = PART.exec(text);
    if (!m || m[1] === undefined || m[2] === undefined) return { problem: `must be a duration like "1s" or "500ms", got "${value}"` };
    total += Number(m[1]) * (UNIT_MS[m[2]] ?? 0);
    pos = PART.lastIndex;
  }
  if (text.length === 0) return { problem: 'must be a duration like "1s", got an empty string' };
  return { ms: Math.round(total) };
}

/** Daemon config form: milliseconds, or undefined when not a non-negative duration. */
export function parseDuration(v: unknown): number | undefined {
  const r = parseDurationMs(v);
  return 'ms' in r && r.ms >= 0 && Number.isSafeInteger(r.ms) ? r.ms : undefined;
}
