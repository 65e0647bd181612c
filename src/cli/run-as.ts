// `hexr-pid-mapper run-as --agent A --tenant T --role R -- CMD...`: starts CMD
// and writes its marker the way the SDK does (temp file + rename, named
// {agent}-{role}.json), with the child's PID as seen in this PID namespace,
// its PID-namespace inode and its start time. The marker is removed when the
// child exits; the exit status is passed on.
//
// Meanwhile it asks the daemon (debug endpoint) whether the child got mapped,
// for up to --wait: one line on stderr when it is, a warning when no daemon
// answers or the marker is not mapped, with the daemon's reason. The command
// runs either way.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDuration } from '../core/duration.js';
import { escapeText } from '../core/escape.js';
import { NAME_RE, markerFileName } from '../core/marker.js';
import { parseNsLink, parseStatStartTime } from '../core/procparse.js';
import { parseCommand, usageError } from './args.js';
import type { Env } from './context.js';
import { debugAddr } from './debug-client.js';
import { markerNamed, markersOf, pollDaemon } from './daemon-watch.js';

const USAGE = `usage: hexr-pid-mapper run-as --agent NAME --tenant NAME --role NAME [--framework NAME] [--resource R]...
                              [--context-dir DIR] [--addr HOST:PORT] [--wait 15s] -- CMD [ARGS...]

Starts CMD and writes its marker the way the SDK does; removes it when CMD
exits and exits with CMD's status.

  --context-dir DIR  where the marker goes (default: HEXR_CONTEXT_DIR, else /tmp/hexr-context)
  --addr HOST:PORT   the daemon's debug_addr, asked whether CMD got mapped
                     (default: HEXR_DEBUG_ADDR, else 127.0.0.1:8787)
  --wait D           how long to wait for the mapping before warning on stderr
                     (default 15s; 0: do not ask the daemon)
`;

const SIGNALS: Readonly<Record<string, number>> = { SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGKILL: 9 };

export async function runAsCommand(args: string[], env: Env): Promise<number> {
  const sep = args.indexOf('--');
  const own = sep < 0 ? args : args.slice(0, sep);
  const cmd = sep < 0 ? [] : args.slice(sep + 1);
  const parsed = parseCommand(
    {
      name: 'run-as',
      usage: USAGE,
      options: {
        agent: { type: 'string' },
        tenant: { type: 'string' },
        role: { type: 'string' },
        framework: { type: 'string' },
        resource: { type: 'string', multiple: true },
        'context-dir': { type: 'string' },
        addr: { type: 'string' },
        wait: { type: 'string', default: '15s' },
      },
    },
    own,
  );
  if (!parsed.ok) return parsed.exitCode;
  const { values } = parsed;
  const problems: string[] = [];
  for (const k of ['agent', 'tenant', 'role'] as const) {
    const v = values[k];
    if (v === undefined) problems.push(`--${k} is required`);
    else if (!NAME_RE.test(v)) problems.push(`--${k} "${v}" must match ${NAME_RE.source}`);
  }
  if (values.framework !== undefined && !NAME_RE.test(values.framework)) problems.push(`--framework must match ${NAME_RE.source}`);
  const waitMs = parseDuration(values.wait);
  if (waitMs === undefined) problems.push(`--wait "${values.wait}" is not a duration (e.g. 15s; 0 to not ask the daemon)`);
  if (cmd.length === 0) problems.push('a command is required after --');
  if (problems.length > 0) return usageError('run-as', USAGE, problems.join('; '));

  const dir = values['context-dir'] ?? env['HEXR_CONTEXT_DIR'] ?? '/tmp/hexr-context';
  fs.mkdirSync(dir, { recursive: true, mode: 0o1777 });
  const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: 'inherit' });
  const spawned = await new Promise<boolean>(resolve => {
    child.once('spawn', () => resolve(true));
    child.once('error', err => {
      process.stderr.write(`hexr-pid-mapper run-as: cannot start ${escapeText(cmd[0] as string)}: ${err.message}\n`);
      resolve(false);
    });
  });
  if (!spawned || child.pid === undefined) return 127;
  const pid = child.pid;
  const name = markerFileName(values.agent as string, values.role as string);
  const file = path.join(dir, name);
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
  process.stderr.write(`hexr-pid-mapper run-as: started ${escapeText(cmd[0] as string)} as PID ${pid}, marker ${escapeText(file)}\n`);

  const exited = new AbortController();
  const checked = waitMs === 0 || waitMs === undefined ? Promise.resolve() : reportMapping(debugAddr(values.addr, env), pid, name, file, waitMs, exited.signal);

  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, forward(sig));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => child.once('exit', (c, s) => resolve([c, s])));
  exited.abort();
  await checked;
  try {
    const cur = JSON.parse(fs.readFileSync(file, 'utf8')) as { container_pid?: unknown };
    if (cur.container_pid === pid) fs.rmSync(file, { force: true });
  } catch {
    /* already gone or replaced */
  }
  if (signal) return 128 + (SIGNALS[signal] ?? 0);
  return code ?? 1;
}

/** Asks the daemon until it maps `pid` (one line) or `waitMs` passes (a warning). Silent if the child exits first. */
async function reportMapping(addr: string, pid: number, name: string, file: string, waitMs: number, exited: AbortSignal): Promise<void> {
  const ours = (e: { container_pid: number; marker_path: string }): boolean => e.container_pid === pid && path.basename(e.marker_path) === name;
  const { view, met } = await pollDaemon(addr, '', v => exited.aborted || (v.kind === 'ready' && v.entries.some(ours)), waitMs, exited);
  if (exited.aborted) return;
  const say = (line: string): void => void process.stderr.write(`hexr-pid-mapper run-as: ${line}\n`);
  if (met && view.kind === 'ready') {
    const e = view.entries.find(ours);
    say(`PID ${pid} mapped by the daemon at ${addr} (host PID ${e?.host_pid ?? '?'}, ${escapeText(e?.spiffe_path ?? '')})`);
    return;
  }
  const after = `${Math.round(waitMs / 100) / 10}s`;
  if (view.kind === 'unreachable') {
    say(
      `warning: no daemon answered at ${addr} within ${after}; PID ${pid} runs without an identity until a daemon maps ${escapeText(file)} ` +
        '(start one with `npm start`, or pass --addr HOST:PORT / HEXR_DEBUG_ADDR)',
    );
  } else if (view.kind === 'starting') {
    say(`warning: the daemon at ${addr} is still starting after ${after}; PID ${pid} is not mapped yet`);
  } else {
    const m = markerNamed(await markersOf(addr), name);
    say(
      m
        ? `warning: the daemon at ${addr} has not mapped PID ${pid} after ${after}: ${escapeText(m.path)} is ${escapeText(m.state)} (${escapeText(m.reason)})`
        : `warning: the daemon at ${addr} does not see ${escapeText(file)} after ${after}: is ${escapeText(path.dirname(file))} its context root (--context-dir)?`,
    );
  }
}
