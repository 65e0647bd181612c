// `hexr-pid-mapper pidmap`: the daemon's PID map as a table (or JSON, or just
// the host PIDs), read from its debug endpoint.
import { safeJson } from '../core/escape.js';
import type { PidmapRow } from '../daemon/debug-view.js';
import { parseCommand } from './args.js';
import type { Env } from './context.js';
import { FILTER_OPTIONS, debugAddr, filterQuery, getJson } from './debug-client.js';
import { renderTable } from './table.js';

const USAGE = `usage: hexr-pid-mapper pidmap [--json | -q] [--pod UID] [--role R] [--tenant T] [--agent A] [--addr HOST:PORT]

Prints the daemon's PID map, read from its debug endpoint.

  --json           the whole answer as JSON
  -q, --quiet      only the host PIDs, one per line (for scripts)
  --pod, --role, --tenant, --agent   show only the matching mappings
  --addr HOST:PORT the daemon's debug_addr (default: HEXR_DEBUG_ADDR, else 127.0.0.1:8787)
`;

export async function pidmapCommand(args: string[], env: Env): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'pidmap',
      usage: USAGE,
      options: {
        addr: { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', short: 'q', default: false },
        ...FILTER_OPTIONS,
      },
    },
    args,
  );
  if (!parsed.ok) return parsed.exitCode;
  const { values } = parsed;
  let body: { version: number; count: number; entries: PidmapRow[] };
  try {
    body = await getJson<typeof body>(debugAddr(values.addr, env), `/debug/pidmap${filterQuery(values)}`);
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper pidmap: ${(err as Error).message}\n`);
    return 1;
  }
  if (values.json) process.stdout.write(`${safeJson(body, 2)}\n`);
  else if (values.quiet) process.stdout.write(body.entries.map(e => `${e.host_pid}\n`).join(''));
  else process.stdout.write(pidmapTable(body.entries) + `${body.count} mapped, map version ${body.version}\n`);
  return 0;
}

/** The table `pidmap` prints (one line per mapping, every cell escaped). */
export function pidmapTable(entries: readonly PidmapRow[]): string {
  const rows = entries.map(e => [e.host_pid, e.container_pid, e.tenant, e.agent_name, e.process_role, e.pod_uid, e.marker_path]);
  return renderTable(['HOST PID', 'CPID', 'TENANT', 'AGENT', 'ROLE', 'POD', 'MARKER'], rows);
}
