// `hexr-pid-mapper explain <pid>`: why a host PID gets the selectors it gets, or none.
import { parseArgs } from 'node:util';
import type { Env } from './context.js';
import { debugAddr, getJson } from './debug-client.js';
import { escapeText, safeJson } from '../core/escape.js';

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
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({ args, options: { addr: { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true }));
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper explain: ${(err as Error).message}\nusage: hexr-pid-mapper explain [--addr HOST:PORT] [--json] PID\n`);
    return 2;
  }
  const pid = positionals[0];
  if (positionals.length !== 1 || pid === undefined || !/^\d{1,10}$/.test(pid)) {
    process.stderr.write('usage: hexr-pid-mapper explain [--addr HOST:PORT] [--json] PID\n');
    return 2;
  }
  let e: Explained;
  try {
    e = await getJson<Explained>(debugAddr(values.addr, env), `/debug/explain/${pid}`);
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper explain: ${(err as Error).message}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${safeJson(e, 2)}\n`);
    return 0;
  }
  const lines = [
    `PID ${e.pid}: ${e.verdict}`,
    `  container PID: ${e.container_pid ?? '-'}   pod: ${e.pod_uid ?? '-'}`,
    `  selectors: ${e.selectors.length > 0 ? e.selectors.join(' ') : '(none)'}`,
  ];
  for (const m of e.markers_naming_its_container_pid ?? []) {
    lines.push(`  marker ${m.marker_path}: ${m.state} (${m.reason}); for this PID: ${m.this_pid}`);
  }
  process.stdout.write(`${lines.map(escapeText).join('\n')}\n`);
  return 0;
}
