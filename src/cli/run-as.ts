// `hexr-pid-mapper run-as --agent A --tenant T --role R -- CMD...`: starts CMD
// and writes its marker the way the SDK does (temp file + rename, named
// {agent}-{role}.json), with the child's PID as seen in this PID namespace,
// its PID-namespace inode and its start time. The marker is removed when the
// child exits; the exit status is passed on.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { NAME_RE, markerFileName } from '../core/marker.js';
import { parseNsLink, parseStatStartTime } from '../core/procparse.js';
import type { Env } from './context.js';

const USAGE = 'usage: hexr-pid-mapper run-as --agent NAME --tenant NAME --role NAME [--framework NAME] [--resource R]... [--context-dir DIR] -- CMD [ARGS...]\n';

export async function runAsCommand(args: string[], env: Env): Promise<number> {
  const sep = args.indexOf('--');
  const own = sep < 0 ? args : args.slice(0, sep);
  const cmd = sep < 0 ? [] : args.slice(sep + 1);
  let values;
  try {
    values = parseArgs({
      args: own,
      options: {
        agent: { type: 'string' },
        tenant: { type: 'string' },
        role: { type: 'string' },
        framework: { type: 'string' },
        resource: { type: 'string', multiple: true },
        'context-dir': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper run-as: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const problems: string[] = [];
  for (const k of ['agent', 'tenant', 'role'] as const) {
    const v = values[k];
    if (v === undefined) problems.push(`--${k} is required`);
    else if (!NAME_RE.test(v)) problems.push(`--${k} "${v}" must match ${NAME_RE.source}`);
  }
  if (values.framework !== undefined && !NAME_RE.test(values.framework)) problems.push(`--framework must match ${NAME_RE.source}`);
  if (cmd.length === 0) problems.push('a command is required after --');
  if (problems.length > 0) {
    process.stderr.write(`hexr-pid-mapper run-as: ${problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  const dir = values['context-dir'] ?? env['HEXR_CONTEXT_DIR'] ?? '/tmp/hexr-context';
  fs.mkdirSync(dir, { recursive: true, mode: 0o1777 });
  const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: 'inherit' });
  const spawned = await new Promise<boolean>(resolve => {
    child.once('spawn', () => resolve(true));
    child.once('error', err => {
      process.stderr.write(`hexr-pid-mapper run-as: cannot start ${cmd[0]}: ${err.message}\n`);
      resolve(false);
    });
  });
  if (!spawned || child.pid === undefined) return 127;
  const pid = child.pid;
  const file = path.join(dir, markerFileName(values.agent as string, values.role as string));
  const marker: Record<string, unknown> = {
    agent_name: values.agent,
    tenant: values.tenant,
    process_role: values.role,
    container_pid: pid,
  };
  if (values.framework !== undefined) marker['framework'] = values.framework;
  if (values.resource !== undefined) marker['resources'] = values.resource;
  try {
    const ns = parseNsLink(fs.readlinkSync(`/proc/${pid}/ns/pid`));
    const st = parseStatStartTime(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
    if (ns !== undefined) marker['pid_namespace'] = ns;
    if (st !== undefined) marker['process_start_time'] = st;
  } catch {
    /* the child already exited; its marker will simply never map */
  }
  const tmp = `${file}.${pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(marker)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
  process.stderr.write(`hexr-pid-mapper run-as: started ${cmd[0]} as PID ${pid}, marker ${file}\n`);

  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, forward(sig));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => child.once('exit', (c, s) => resolve([c, s])));
  try {
    const cur = JSON.parse(fs.readFileSync(file, 'utf8')) as { container_pid?: unknown };
    if (cur.container_pid === pid) fs.rmSync(file, { force: true });
  } catch {
    /* already gone or replaced */
  }
  if (signal) return 128 + ((({ SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGKILL: 9 }) as Record<string, number>)[signal] ?? 0);
  return code ?? 1;
}
