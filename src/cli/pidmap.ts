// `hexr-pid-mapper pidmap`: the daemon's PID map as a table (or JSON), read
// from its debug endpoint.
import { parseArgs } from 'node:util';
import { renderTable, type PidmapRow } from '../daemon/debug-view.js';
import type { Env } from './context.js';
import { debugAddr, getJson } from './debug-client.js';
import { safeJson } from '../core/escape.js';

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
  const query = new URLSearchParams();
  for (const k of ['pod', 'role', 'tenant', 'agent'] as const) {
    const v = values[k];
    if (v !== undefined) query.set(k, v);
  }
  const q = query.toString();
  let body: { version: number; count: number; entries: PidmapRow[] };
  try {
    body = await getJson<typeof body>(debugAddr(values.addr, env), `/debug/pidmap${q === '' ? '' : `?${q}`}`);
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper pidmap: ${(err as Error).message}\n`);
    return 1;
  }
  if (values.json) process.stdout.write(`${safeJson(body, 2)}\n`);
  else process.stdout.write(renderTable(body.entries) + `${body.count} mapped, map version ${body.version}\n`);
  return 0;
}
