// Daemon configuration: flags > environment (HEXR_*) > JSON config file
// (--config / HEXR_CONFIG) > defaults. Validated once at start; every problem
// is reported at once; the result is frozen. `env` is passed in: no module
// reads process.env. `doctor` passes a running daemon's own configuration in
// place of the defaults, so that it checks what that daemon really uses.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../core/duration.js';
import { NAME_RE } from '../core/marker.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import type { LayoutConfig } from './layout.js';
import { socketPathProblem } from '../socket-path.js';

export interface ListenAddr {
  readonly host: string;
  readonly port: number;
}

export interface DaemonConfig {
  readonly layout: LayoutConfig;
  /** Where markers sit inside a workload's own filesystem (rule 3 of the mapping). */
  readonly containerContextDir: string;
  readonly stateDir: string;
  readonly socketPath: string;
  /** Group allowed to use the socket (mode 0660), or undefined: root only (0600). */
  readonly socketGid: number | undefined;
  /** undefined: disabled. */
  readonly debugAddr: ListenAddr | undefined;
  readonly metricsAddr: ListenAddr | undefined;
  /** Root of the /proc seam: "/" in production. */
  readonly procRoot: string;
  readonly resyncIntervalMs: number;
  readonly livenessIntervalMs: number;
  readonly pendingRetryMs: number;
  readonly attestWaitMs: number;
  readonly markerMaxBytes: number;
  readonly exclusiveRoles: boolean;
  /** How much later than the marker's ctime a candidate may have started (clock granularity). */
  readonly startSlackMs: number;
  readonly podMarkerLimit: number;
  readonly podEventRate: number;
  readonly dirFloodRate: number;
  readonly logLevel: LogLevel;
  readonly nodeName: string | undefined;
  /** Size at which state_dir/history.jsonl is rotated; 0: no identity history. */
  readonly historyMaxBytes: number;
  /** Rotated history files kept (history.1.jsonl ... history.N.jsonl). */
  readonly historyMaxFiles: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

interface KeySpec {
  flag: string;
  env: string;
  def: string;
  help: string;
}

/** Every key: config-file name → flag, env var, default, one line of help. */
export const KEYS: Record<string, KeySpec> = {
  layout: { flag: 'layout', env: 'HEXR_LAYOUT', def: 'kubelet', help: 'flat (one directory) or kubelet (emptyDir volumes of every pod)' },
  context_root: { flag: 'context-root', env: 'HEXR_CONTEXT_ROOT', def: '/tmp/hexr-context', help: 'flat layout: the directory markers are written to' },
  kubelet_root: { flag: 'kubelet-root', env: 'HEXR_KUBELET_ROOT', def: '/var/lib/kubelet', help: 'kubelet layout: kubelet root directory (pods/ below it)' },
  context_volume: { flag: 'context-volume', env: 'HEXR_CONTEXT_VOLUME', def: 'hexr-context', help: 'kubelet layout: name of the emptyDir volume holding markers' },
  container_context_dir: {
    flag: 'container-context-dir',
    env: 'HEXR_CONTAINER_CONTEXT_DIR',
    def: '/tmp/hexr-context',
    help: 'the context directory as workloads see it (inside their mount namespace); flat layout: defaults to context_root',
  },
  state_dir: { flag: 'state-dir', env: 'HEXR_STATE_DIR', def: '/run/hexr/pid-map', help: 'where enriched context files {host_pid}.json are written' },
  socket: { flag: 'socket', env: 'HEXR_SOCKET', def: '/run/hexr/pid-mapper.sock', help: 'unix socket of the local attestation API (mode 0600)' },
  socket_group: { flag: 'socket-group', env: 'HEXR_SOCKET_GROUP', def: '', help: 'group (name or GID) allowed to use the socket, made mode 0660, e.g. for a non-root SPIRE agent; empty: root only' },
  debug_addr: { flag: 'debug-addr', env: 'HEXR_DEBUG_ADDR', def: '127.0.0.1:8787', help: 'debug endpoint host:port (/debug/*, /live, /ready); "off" disables; port 0 picks one' },
  metrics_addr: { flag: 'metrics-addr', env: 'HEXR_METRICS_ADDR', def: '127.0.0.1:8788', help: 'Prometheus /metrics host:port; "off" disables; port 0 picks one' },
  proc_root: { flag: 'proc-root', env: 'HEXR_PROC_ROOT', def: '/', help: 'directory that holds the host proc/ (for tests or a /host mount)' },
  resync_interval: { flag: 'resync-interval', env: 'HEXR_RESYNC_INTERVAL', def: '30s', help: 'full rescan of markers and /proc that heals lost events' },
  liveness_interval: { flag: 'liveness-interval', env: 'HEXR_LIVENESS_INTERVAL', def: '2s', help: 'how often mapped processes are checked for exit or PID reuse' },
  pending_retry: { flag: 'pending-retry', env: 'HEXR_PENDING_RETRY', def: '1s', help: 'how often pending markers are retried (for 60 s after they change)' },
  attest_wait: { flag: 'attest-wait', env: 'HEXR_ATTEST_WAIT', def: '500ms', help: 'longest wait in Attest for a marker still in flight' },
  marker_max_bytes: { flag: 'marker-max-bytes', env: 'HEXR_MARKER_MAX_BYTES', def: '4096', help: 'size cap of a marker file' },
  exclusive_roles: { flag: 'exclusive-roles', env: 'HEXR_EXCLUSIVE_ROLES', def: 'true', help: 'one live process per role per pod (false: worker pools share a role)' },
  start_slack: { flag: 'start-slack', env: 'HEXR_START_SLACK', def: '50ms', help: 'tolerance of the started-before-the-marker rule for clock granularity (start times are 10 ms ticks; file times one kernel tick)' },
  pod_marker_limit: { flag: 'pod-marker-limit', env: 'HEXR_POD_MARKER_LIMIT', def: '1024', help: 'marker files one pod (or the flat directory) may have tracked; more are ignored and reported' },
  pod_event_rate: { flag: 'pod-event-rate', env: 'HEXR_POD_EVENT_RATE', def: '1000', help: 'marker events per second one pod may cause (bursts of twice that); more wait, delaying only that pod' },
  dir_flood_rate: { flag: 'dir-flood-rate', env: 'HEXR_DIR_FLOOD_RATE', def: '2000', help: 'events per second on one context directory beyond which it is left unwatched for 5 s (then rescanned)' },
  log_level: { flag: 'log-level', env: 'HEXR_LOG_LEVEL', def: 'info', help: 'trace, debug, info, warn or error' },
  history_max_bytes: { flag: 'history-max-bytes', env: 'HEXR_HISTORY_MAX_BYTES', def: '4194304', help: 'identity history: size at which state_dir/history.jsonl is rotated (0 disables the history)' },
  history_max_files: { flag: 'history-max-files', env: 'HEXR_HISTORY_MAX_FILES', def: '5', help: 'identity history: rotated files kept (history.1.jsonl ... history.N.jsonl)' },
};

function parseAddr(key: string, v: string, problems: string[]): ListenAddr | undefined {
  if (v === 'off' || v === '') return undefined;
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    problems.push(`${key}: "${v}" is not host:port (or "off")`);
    return undefined;
  }
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** GID of a group name from an /etc/group-format file; undefined when absent. */
function groupId(name: string, file: string): number | undefined {
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {
    /* no such file: unknown group */
  }
  return undefined;
}

/**
 * `defaults`, when given, replaces the built-in defaults (config-file keys to
 * string values): how `doctor` checks the configuration of a running daemon.
 */
export function loadDaemonConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  defaults: Readonly<Record<string, string>> = {},
): DaemonConfig {
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } };
  for (const spec of Object.values(KEYS)) options[spec.flag] = { type: 'string' };
  const problems: string[] = [];
  let flags: Record<string, string | undefined> = {};
  try {
    flags = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }

  let file: Record<string, unknown> = {};
  const configPath = flags['config'] ?? env['HEXR_CONFIG'];
  if (configPath !== undefined) {
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(configPath, 'utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) problems.push(`config file ${configPath}: not a JSON object`);
      else file = parsed as Record<string, unknown>;
    } catch (err) {
      problems.push(`config file ${configPath}: ${(err as Error).message}`);
    }
  }
  // Own keys only: `in` would accept inherited names such as "constructor" or "__proto__".
  for (const k of Object.keys(file)) if (!Object.hasOwn(KEYS, k)) problems.push(`config file: unknown key "${k}"`);

  const given = (key: string): string | undefined => {
    const spec = KEYS[key] as KeySpec;
    const v = flags[spec.flag] ?? env[spec.env] ?? (Object.hasOwn(file, key) ? file[key] : undefined) ?? (Object.hasOwn(defaults, key) ? defaults[key] : undefined);
    if (v === undefined) return undefined;
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  const raw = (key: string): string => given(key) ?? (KEYS[key] as KeySpec).def;
  const int = (key: string, min: number, max: number): number => {
    const v = Number(raw(key));
    if (!/^\d+$/.test(raw(key)) || v < min || v > max) problems.push(`${key}: "${raw(key)}" must be an integer in [${min}, ${max}]`);
    return v;
  };
  const dur = (key: string, min: number, max: number): number => {
    const v = parseDuration(raw(key));
    if (v === undefined || v < min || v > max) {
      problems.push(`${key}: "${raw(key)}" must be a duration (e.g. 500ms, 2s) between ${min}ms and ${max}ms`);
      return min;
    }
    return v;
  };
  const absPath = (key: string): string => {
    const v = raw(key);
    if (!path.isAbsolute(v)) problems.push(`${key}: "${v}" must be an absolute path`);
    return path.resolve(v);
  };

  const layoutKind = raw('layout');
  let layout: LayoutConfig;
  if (layoutKind === 'flat') {
    layout = { kind: 'flat', contextRoot: absPath('context_root') };
    if (layout.contextRoot === '/') problems.push('context_root: must not be /');
  } else if (layoutKind === 'kubelet') {
    const volume = raw('context_volume');
    if (!NAME_RE.test(volume)) problems.push(`context_volume: "${volume}" is not a valid volume name`);
    layout = { kind: 'kubelet', kubeletRoot: absPath('kubelet_root'), volume };
  } else {
    problems.push(`layout: "${layoutKind}" must be "flat" or "kubelet"`);
    layout = { kind: 'flat', contextRoot: '/tmp/hexr-context' };
  }
  const socketPath = absPath('socket');
  const sockProblem = socketPathProblem(socketPath);
  if (sockProblem !== undefined) problems.push(`socket: ${sockProblem}`);
  const socketGroup = raw('socket_group');
  let socketGid: number | undefined;
  if (socketGroup !== '') {
    socketGid = /^\d{1,10}$/.test(socketGroup) ? Number(socketGroup) : groupId(socketGroup, env['HEXR_GROUP_FILE'] ?? '/etc/group');
    if (socketGid === undefined || socketGid > 0xffff_fffe) problems.push(`socket_group: "${socketGroup}" is not a GID or a group in /etc/group`);
  }
  const maxBytes = int('marker_max_bytes', 256, 1_048_576);
  const historyMaxBytes = int('history_max_bytes', 0, 1 << 30);
  if (historyMaxBytes > 0 && historyMaxBytes < 4096) problems.push(`history_max_bytes: "${raw('history_max_bytes')}" must be 0 (off) or at least 4096`);
  const excl = raw('exclusive_roles');
  if (excl !== 'true' && excl !== 'false') problems.push(`exclusive_roles: "${excl}" must be true or false`);
  const level = raw('log_level');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) problems.push(`log_level: "${level}" must be one of ${LOG_LEVELS.join(', ')}`);

  const cfg: DaemonConfig = {
    layout,
    // Flat layout: a host process sees the context root at its own path.
    containerContextDir: layout.kind === 'flat' && given('container_context_dir') === undefined ? layout.contextRoot : absPath('container_context_dir'),
    stateDir: absPath('state_dir'),
    socketPath,
    socketGid,
    debugAddr: parseAddr('debug_addr', raw('debug_addr'), problems),
    metricsAddr: parseAddr('metrics_addr', raw('metrics_addr'), problems),
    procRoot: absPath('proc_root'),
    resyncIntervalMs: dur('resync_interval', 100, 3_600_000),
    livenessIntervalMs: dur('liveness_interval', 50, 600_000),
    pendingRetryMs: dur('pending_retry', 10, 600_000),
    attestWaitMs: dur('attest_wait', 0, 30_000),
    markerMaxBytes: maxBytes,
    exclusiveRoles: excl !== 'false',
    startSlackMs: dur('start_slack', 0, 3_600_000),
    podMarkerLimit: int('pod_marker_limit', 1, 1_000_000),
    podEventRate: int('pod_event_rate', 1, 1_000_000),
    dirFloodRate: int('dir_flood_rate', 10, 10_000_000),
    logLevel: level as LogLevel,
    nodeName: env['NODE_NAME'],
    historyMaxBytes,
    historyMaxFiles: int('history_max_files', 0, 100),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  // Frozen all the way down: the nested objects are part of the config too.
  Object.freeze(cfg.layout);
  if (cfg.debugAddr) Object.freeze(cfg.debugAddr);
  if (cfg.metricsAddr) Object.freeze(cfg.metricsAddr);
  return Object.freeze(cfg);
}

function addrText(a: ListenAddr | undefined): string {
  if (!a) return 'off';
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/**
 * The places a configuration uses, as config-file keys: what a running daemon
 * reports in /debug/status, so that the CLI (doctor, history) finds its
 * socket, context root and state_dir without being told.
 */
export function configPlaces(c: DaemonConfig): Record<string, string> {
  const layout =
    c.layout.kind === 'flat' ? { layout: 'flat', context_root: c.layout.contextRoot } : { layout: 'kubelet', kubelet_root: c.layout.kubeletRoot, context_volume: c.layout.volume };
  return {
    ...layout,
    container_context_dir: c.containerContextDir,
    state_dir: c.stateDir,
    socket: c.socketPath,
    debug_addr: addrText(c.debugAddr),
    metrics_addr: addrText(c.metricsAddr),
    proc_root: c.procRoot,
  };
}
