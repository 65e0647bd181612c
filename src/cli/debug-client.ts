// Reads the daemon's debug endpoint for the SRE commands.
import type { Env } from './context.js';

export function debugAddr(flag: string | undefined, env: Env): string {
  return flag ?? env['HEXR_DEBUG_ADDR'] ?? '127.0.0.1:8787';
}

export async function getJson<T>(addr: string, pathAndQuery: string): Promise<T> {
  const url = `http://${addr}${pathAndQuery}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new Error(`cannot read ${url}: ${(err as Error).message} (is the daemon running, and is --addr / HEXR_DEBUG_ADDR its debug_addr?)`, { cause: err });
  }
  if (!res.ok) throw new Error(`cannot read ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}
