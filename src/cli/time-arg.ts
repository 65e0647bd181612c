// Times on the command line (history --at / --since), read in the local time
// zone (TZ) unless they say otherwise:
//   14:03, 14:03:20            today at that time (yesterday if that is still to come)
//   2026-11-23                 midnight of that day
//   2026-11-23 14:03[:20]      (or with a T)
//   2026-11-23T14:03:20Z, ...+01:00   an exact instant
//   90s, 30m, 1h, 2d           that long ago
import { parseDuration } from '../core/duration.js';

const DAY_MS = 86_400_000;

/** Milliseconds since the epoch, or undefined when `text` is none of the forms above. */
export function parseTimeArg(text: string, now: number): number | undefined {
  const t = text.trim();
  const days = /^(\d{1,4})d$/.exec(t);
  if (days) return now - Number(days[1]) * DAY_MS;
  if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(t)) {
    const ms = parseDuration(t);
    return ms === undefined ? undefined : now - ms;
  }
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  if (clock) {
    const [h, m, s] = [Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0)];
    if (h > 23 || m > 59 || s > 59) return undefined;
    const d = new Date(now);
    d.setHours(h, m, s, 0);
    const at = d.getTime();
    return at > now ? at - DAY_MS : at;
  }
  const local = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/.exec(t);
  if (local) {
    const [y, mo, d, h, mi, s] = local.slice(1, 7).map(v => Number(v ?? 0)) as [number, number, number, number, number, number];
    const frac = local[7] === undefined ? 0 : Number(local[7].padEnd(3, '0'));
    const date = new Date(y, mo - 1, d, h, mi, s, frac);
    if (date.getFullYear() !== y || date.getMonth() !== mo - 1 || date.getDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
    return date.getTime();
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t)) {
    const at = Date.parse(t);
    return Number.isNaN(at) ? undefined : at;
  }
  return undefined;
}

/** Local wall-clock time for tables: 2026-11-23 14:03:20.123 */
export function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
