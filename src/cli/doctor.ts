// `hexr-pid-mapper doctor [daemon flags] [--spire-config FILE]`: checks this
// node's prerequisites and prints one PASS / WARN / FAIL line per check.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, KEYS, loadDaemonConfig } from '../daemon/config.js';
import { socketAccepts } from '../daemon/socket-probe.js';
import { parseCommand, usageError } from './args.js';
import type { Env } from './context.js';
import { DEFAULT_DEBUG_ADDR, daemonStatus, placesOf } from './debug-client.js';
import { hexrBlockBody, topLevelString } from './spire-conf.js';

type Level = 'PASS' | 'WARN' | 'FAIL';
interface Check {
  level: Level;
  what: string;
  detail: string;
}

function readNum(file: string): number | undefined {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

const USAGE = `usage: hexr-pid-mapper doctor [--addr HOST:PORT] [--spire-config FILE] [daemon flags]

Checks this node's prerequisites and prints one PASS / WARN / FAIL line each;
exits 1 on any FAIL.

It checks the configuration of the daemon running at --addr (default:
HEXR_DEBUG_ADDR, else 127.0.0.1:8787), as the daemon reports it; daemon flags
(hexr-pid-mapper daemon --help), HEXR_* variables and --config override it.
With no daemon running it checks the built-in defaults (kubelet layout).

  --spire-config FILE  also check the SPIRE agent's WorkloadAttestor "hexr" block
`;

export async function doctorCommand(args: string[], env: Env): Promise<number> {
  const options: Record<string, { type: 'string' }> = { addr: { type: 'string' }, 'spire-config': { type: 'string' }, config: { type: 'string' } };
  for (const spec of Object.values(KEYS)) options[spec.flag] = { type: 'string' };
  const parsed = parseCommand({ name: 'doctor', usage: USAGE, options }, args);
  if (!parsed.ok) return parsed.exitCode;
  const values = parsed.values as Record<string, string | undefined>;
  const spireConfig = values['spire-config'];
  const daemonArgs: string[] = [];
  for (const flag of ['config', ...Object.values(KEYS).map(s => s.flag)]) {
    const v = values[flag];
    if (v !== undefined) daemonArgs.push(`--${flag}=${v}`);
  }
  const addr = values['addr'] ?? values['debug-addr'] ?? env['HEXR_DEBUG_ADDR'] ?? DEFAULT_DEBUG_ADDR;
  const status = addr === 'off' ? undefined : await daemonStatus(addr);
  const places = placesOf(status);
  let cfg;
  try {
    cfg = loadDaemonConfig(daemonArgs, env, places ?? {});
  } catch (err) {
    if (err instanceof ConfigError) return usageError('doctor', USAGE, err.problems.join('; '));
    throw err;
  }
  const checks: Check[] = [];
  const add = (level: Level, what: string, detail: string): void => void checks.push({ level, what, detail });
  const where = `${cfg.layout.kind} layout, socket ${cfg.socketPath}, state_dir ${cfg.stateDir}`;
  const own = daemonArgs.length > 0 ? ' (with the flags given here on top)' : '';
  if (places) add('PASS', 'daemon', `running at ${addr}; checking its configuration${own}: ${where}`);
  else if (status) add('WARN', 'daemon', `running at ${addr} but it does not report its configuration; checking ${daemonArgs.length > 0 ? 'the flags given' : 'the built-in defaults'}: ${where}`);
  else {
    const hint =
      daemonArgs.length > 0
        ? 'checking the flags given'
        : 'checking the built-in defaults; to check another configuration pass its daemon flags (`npm start` runs --layout flat), or --addr HOST:PORT of a running daemon';
    add('WARN', 'daemon', `no daemon answered at ${addr}; ${hint}: ${where}`);
  }
  const proc = path.join(cfg.procRoot, 'proc');

  // /proc: can we see other PID namespaces' processes and their roots?
  try {
    const pids = fs.readdirSync(proc).filter(n => /^\d+$/.test(n));
    const namespaces = new Set<string>();
    let nested = 0;
    for (const p of pids) {
      try {
        namespaces.add(fs.readlinkSync(`${proc}/${p}/ns/pid`));
        if (/NSpid:\s+\d+\s+\d+/.test(fs.readFileSync(`${proc}/${p}/status`, 'latin1'))) nested++;
      } catch {
        /* exited */
      }
    }
    const own = fs.readlinkSync('/proc/self/ns/pid');
    let init: string | undefined;
    try {
      init = fs.readlinkSync(`${proc}/1/ns/pid`);
    } catch {
      init = undefined;
    }
    const seen = `${pids.length} processes in ${namespaces.size} PID namespaces, ${nested} in nested ones`;
    if (init === undefined) add('WARN', '/proc visibility', `cannot read ${proc}/1/ns/pid to confirm hostPID; ${seen}`);
    else add(own === init ? 'PASS' : 'FAIL', '/proc visibility', own === init ? `in the host PID namespace (hostPID); ${seen}` : 'not in the host PID namespace: set hostPID: true');
    const other = pids.find(p => p !== String(process.pid) && p !== '1' && fs.existsSync(`${proc}/${p}/root`));
    try {
      if (other === undefined) throw Object.assign(new Error('no other process'), { code: 'ENOENT' });
      fs.readdirSync(`${proc}/${other}/root/`);
      add('PASS', '/proc/PID/root', `readable (PID ${other}; needed for the same-file check)`);
    } catch (err) {
      add('FAIL', '/proc/PID/root', `cannot read ${proc}/${other ?? '?'}/root: ${(err as NodeJS.ErrnoException).code ?? String(err)} (needs root with CAP_SYS_PTRACE)`);
    }
  } catch (err) {
    add('FAIL', '/proc visibility', `cannot list ${proc}: ${(err as Error).message}`);
  }

  // cgroups
  try {
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n');
    const root = mounts.find(l => l.split(' ')[1] === '/sys/fs/cgroup');
    const v2 = mounts.some(l => l.split(' ')[2] === 'cgroup2');
    const v1 = mounts.some(l => l.split(' ')[2] === 'cgroup');
    const kind = root?.split(' ')[2] === 'cgroup2' ? 'v2 (unified)' : v1 && v2 ? 'hybrid (v1 + v2)' : v1 ? 'v1' : 'none found';
    add(v1 || v2 ? 'PASS' : 'WARN', 'cgroup version', `${kind}; pod UIDs are read from /proc/PID/cgroup`);
  } catch (err) {
    add('WARN', 'cgroup version', `cannot read mounts: ${(err as Error).message}`);
  }

  // inotify
  const watches = readNum('/proc/sys/fs/inotify/max_user_watches');
  const instances = readNum('/proc/sys/fs/inotify/max_user_instances');
  add(watches !== undefined && watches >= 8192 ? 'PASS' : 'WARN', 'inotify limits', `max_user_watches=${watches ?? '?'} max_user_instances=${instances ?? '?'} (about 5 watches per pod are used)`);

  // context root
  const root = cfg.layout.kind === 'flat' ? cfg.layout.contextRoot : path.join(cfg.layout.kubeletRoot, 'pods');
  try {
    const st = fs.lstatSync(root);
    if (st.isSymbolicLink()) add('FAIL', 'context root', `${root} is a symlink; it will not be followed`);
    else if (!st.isDirectory()) add('FAIL', 'context root', `${root} is not a directory`);
    else add('PASS', 'context root', `${cfg.layout.kind} layout at ${root}`);
  } catch {
    add('WARN', 'context root', `${root} does not exist yet; the daemon waits for it to appear`);
  }

  // socket directory / daemon
  const sockDir = path.dirname(cfg.socketPath);
  try {
    fs.accessSync(sockDir, fs.constants.W_OK);
    add('PASS', 'socket directory', `${sockDir} is writable`);
  } catch {
    add('WARN', 'socket directory', `${sockDir} is missing or not writable (the daemon creates it if it can)`);
  }
  if (fs.existsSync(cfg.socketPath)) {
    const ok = await socketAccepts(cfg.socketPath);
    const mode = (fs.statSync(cfg.socketPath).mode & 0o777).toString(8);
    add(ok ? 'PASS' : 'FAIL', 'local API socket', ok ? `${cfg.socketPath} accepts connections (mode ${mode})` : `${cfg.socketPath} exists but nothing listens (stale socket?)`);
  } else {
    add('WARN', 'local API socket', `${cfg.socketPath} does not exist: is the daemon running?`);
  }

  // SPIRE agent config
  if (spireConfig !== undefined) checkSpire(spireConfig, add);

  const width = Math.max(...checks.map(c => c.what.length));
  for (const c of checks) process.stdout.write(`${c.level}  ${c.what.padEnd(width)}  ${c.detail}\n`);
  const failed = checks.filter(c => c.level === 'FAIL').length;
  process.stdout.write(`${checks.length - failed} of ${checks.length} checks passed or warned, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

function checkSpire(file: string, add: (l: Level, what: string, detail: string) => void): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    add('FAIL', 'SPIRE agent config', `cannot read ${file}: ${(err as Error).message}`);
    return;
  }
  const body = hexrBlockBody(text);
  if (body === undefined) {
    add('FAIL', 'SPIRE agent config', `${file} has no WorkloadAttestor "hexr" block`);
    return;
  }
  const cmd = topLevelString(body, 'plugin_cmd');
  const exists = cmd !== undefined && path.isAbsolute(cmd) && fs.existsSync(cmd);
  if (!cmd) add('FAIL', 'SPIRE plugin_cmd', 'plugin_cmd is not set (the plugin must be external)');
  else if (!path.isAbsolute(cmd)) add('WARN', 'SPIRE plugin_cmd', `${cmd} is relative: SPIRE resolves it against the agent's working directory`);
  else if (!exists) add('WARN', 'SPIRE plugin_cmd', `${cmd} does not exist on this filesystem (fine if it is inside the agent image)`);
  else checkPluginCmd(cmd, add);
  const sum = topLevelString(body, 'plugin_checksum');
  if (sum === undefined || sum === '') add('WARN', 'SPIRE plugin_checksum', 'not set: SPIRE only warns; set it to the sha256 of plugin_cmd');
  else if (!/^[0-9a-fA-F]{64}$/.test(sum)) {
    add('FAIL', 'SPIRE plugin_checksum', `"${sum}" is not 64 hex characters: the agent will refuse to start ("checksum is not a valid hex string" or "expected checksum of length 64")`);
  } else if (cmd && exists) {
    const actual = createHash('sha256').update(fs.readFileSync(cmd)).digest('hex');
    if (actual === sum.toLowerCase()) add('PASS', 'SPIRE plugin_checksum', 'matches plugin_cmd');
    else {
      add(
        'FAIL',
        'SPIRE plugin_checksum',
        `does not match sha256(${cmd}) = ${actual} (configured: ${sum}): the SPIRE agent checks it before it starts the plugin and refuses to start ` +
          `("failed to launch plugin: checksums did not match"); if ${cmd} is the file you mean to run, set plugin_checksum = "${actual}"`,
      );
    }
  } else add('PASS', 'SPIRE plugin_checksum', 'well-formed');
}

/** plugin_cmd must be executable by the agent, and a script's interpreter (#!) must exist: SPIRE execs it directly. */
function checkPluginCmd(cmd: string, add: (l: Level, what: string, detail: string) => void): void {
  try {
    fs.accessSync(cmd, fs.constants.X_OK);
  } catch {
    add('FAIL', 'SPIRE plugin_cmd', `${cmd} is not executable: the agent cannot start the plugin`);
    return;
  }
  let interp: string | undefined;
  try {
    const fd = fs.openSync(cmd, 'r');
    try {
      const head = Buffer.alloc(256);
      const n = fs.readSync(fd, head, 0, head.length, 0);
      const first = head.subarray(0, n).toString('latin1').split('\n')[0] ?? '';
      if (first.startsWith('#!')) interp = first.slice(2).trim().split(/\s+/)[0];
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    interp = undefined;
  }
  if (interp !== undefined && !fs.existsSync(interp)) {
    add('FAIL', 'SPIRE plugin_cmd', `${cmd} starts with #!${interp}, which does not exist: the agent fails to start the plugin ("no such file or directory")`);
  } else add('PASS', 'SPIRE plugin_cmd', interp === undefined ? cmd : `${cmd} (interpreter ${interp})`);
}
