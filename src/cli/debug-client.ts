// Reads the daemon's debug endpoint for the SRE commands.
import type { Env } from './context.js';

export const DEFAULT_DEBUG_ADDR = '127.0.0.1:8787';

export function debugAddr(flag: string | undefined, env: Env): string {
  return flag ?? env['HEXR_DEBUG_ADDR'] ?? DEFAULT_DEBUG_ADDR;
}

function why(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED)';
  if ((err as Error).name === 'TimeoutError') return 'no answer in time';
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** A signal that aborts after `ms`, or with `also`. */
export function within(ms: number, also?: AbortSignal): AbortSignal {
  return also ? AbortSignal.any([AbortSignal.timeout(ms), also]) : AbortSignal.timeout(ms);
}

export async function getJson<T>(addr: string, pathAndQuery: string, timeoutMs = 5000, signal?: AbortSignal): Promise<T> {
  const url = `http://${addr}${pathAndQuery}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: within(timeoutMs, signal) });
  } catch (err) {
    throw new Error(`cannot read ${url}: ${why(err)}; is the daemon running, and is --addr (or HEXR_DEBUG_ADDR) its debug_addr?`, { cause: err });
  }
  if (!res.ok) throw new Error(`cannot read ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** What /debug/status says about the daemon, as far as the CLI needs it. */
export interface DaemonStatus {
  /** The places it uses, as config-file keys (see configPlaces). */
  readonly config?: Record<string, unknown>;
  readonly [k: string]: unknown;
}

/** The daemon's /debug/status, or undefined when nothing answers at `addr`. */
export async function daemonStatus(addr: string, timeoutMs = 1000): Promise<DaemonStatus | undefined> {
  try {
    return await getJson<DaemonStatus>(addr, '/debug/status', timeoutMs);
  } catch {
    return undefined;
  }
}

/** The daemon's own configuration places (string values only), or undefined. */
export function placesOf(status: DaemonStatus | undefined): Record<string, string> | undefined {
  const c = status?.config;
  if (typeof c !== 'object' || c === null) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** True once /ready answers 200. */
export async function isReady(addr: string, timeoutMs = 1000, signal?: AbortSignal): Promise<boolean> {
  try {
    const res = await fetch(`http://${addr}/ready`, { signal: within(timeoutMs, signal) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** The options that select mappings (pidmap, wait): --pod, --role, --tenant, --agent. */
export const FILTER_OPTIONS = {
  pod: { type: 'string' },
  role: { type: 'string' },
  tenant: { type: 'string' },
  agent: { type: 'string' },
} as const;

/** The /debug/pidmap query of those options: "" or "?pod=...&role=...". */
export function filterQuery(values: Partial<Record<keyof typeof FILTER_OPTIONS, string>>): string {
  const query = new URLSearchParams();
  for (const k of Object.keys(FILTER_OPTIONS) as (keyof typeof FILTER_OPTIONS)[]) {
    const v = values[k];
    if (v !== undefined) query.set(k, v);
  }
  const q = query.toString();
  return q === '' ? '' : `?${q}`;
}
