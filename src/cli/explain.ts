// `hexr-pid-mapper explain <pid>`: why a host PID gets the selectors it gets, or none.
import { escapeText, safeJson } from '../core/escape.js';
import { PID_MAX } from '../core/marker.js';
import { parseCommand, usageError } from './args.js';
import type { Env } from './context.js';
import { debugAddr, getJson } from './debug-client.js';

const USAGE = `usage: hexr-pid-mapper explain [--json] [--addr HOST:PORT] PID

Explains why the host process PID gets the selectors it gets, or none: its
container PID and pod, and for every marker naming its container PID, which
mapping rule passes or fails.

  --json           the daemon's answer as JSON
  --addr HOST:PORT the daemon's debug_addr (default: HEXR_DEBUG_ADDR, else 127.0.0.1:8787)
`;

interface Explained {
  pid: number;
  exists: boolean;
  container_pid: number | null;
  pod_uid: string | null;
  verdict: string;
  selectors: string[];
  markers_naming_its_container_pid?: { marker_path: string; state: string; reason: string; this_pid: string }[];
}

export async function explainCommand(args: string[], env: Env): Promise<number> {
  const parsed = parseCommand({ name: 'explain', usage: USAGE, options: { addr: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true }, args);
  if (!parsed.ok) return parsed.exitCode;
  const { values, positionals } = parsed;
  if (positionals.length === 0) return usageError('explain', USAGE, 'a PID is required');
  if (positionals.length > 1) return usageError('explain', USAGE, `one PID at a time (got ${positionals.length} arguments)`);
  const pid = positionals[0] as string;
  if (!/^\d{1,10}$/.test(pid) || Number(pid) < 1 || Number(pid) > PID_MAX) {
    return usageError('explain', USAGE, `"${pid}" is not a PID (an integer from 1 to ${PID_MAX}, as in /proc)`);
  }
  let e: Explained;
  try {
    e = await getJson<Explained>(debugAddr(values.addr, env), `/debug/explain/${Number(pid)}`);
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper explain: ${(err as Error).message}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${safeJson(e, 2)}\n`);
    return 0;
  }
  const t = (v: unknown): string => escapeText(String(v));
  const lines = [
    `PID ${t(e.pid)}: ${t(e.verdict)}`,
    `  container PID: ${t(e.container_pid ?? '-')}   pod: ${t(e.pod_uid ?? '-')}`,
    `  selectors: ${e.selectors.length > 0 ? e.selectors.map(t).join(' ') : '(none)'}`,
  ];
  for (const m of e.markers_naming_its_container_pid ?? []) {
    lines.push(`  marker ${t(m.marker_path)}: ${t(m.state)} (${t(m.reason)}); for this PID: ${t(m.this_pid)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
