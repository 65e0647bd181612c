// `hexr-pid-mapper pidmap`: the daemon's PID map as a table (or JSON), read
// from its debug endpoint.
import { parseArgs } from 'node:util';
import { renderTable, type PidmapRow } from '../daemon/debug-view.js';
import type { Env } from './context.js';

export async function pidmapCommand(args: string[], env: Env): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      addr: { type: 'string' },
      json: { type: 'boolean', default: false },
      pod: { type: 'string' },
      role: { type: 'string' },
      tenant: { type: 'string' },
      agent: { type: 'string' },
    },
    strict: true,
  });
  const addr = values.addr ?? env['HEXR_DEBUG_ADDR'] ?? '127.0.0.1:8787';
  const url = new URL(`http://${addr}/debug/pidmap`);
  for (const k of ['pod', 'role', 'tenant', 'agent'] as const) {
    const v = values[k];
    if (v !== undefined) url.searchParams.set(k, v);
  }
  let body: { version: number; count: number; entries: PidmapRow[] };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = (await res.json()) as typeof body;
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper pidmap: cannot read ${url.href}: ${(err as Error).message}\n(is the daemon running, and is --addr / HEXR_DEBUG_ADDR its debug_addr?)\n`);
    return 1;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  else process.stdout.write(renderTable(body.entries) + `${body.count} mapped, map version ${body.version}\n`);
  return 0;
}
