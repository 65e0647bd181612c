// Builds and runs the go-plugin host of test/go (cmd/hexr-host), which loads
// `node dist/main.js plugin` (or any command) the way the SPIRE 1.13.3 agent's
// catalog loads external plugins, with SPIRE's own go-plugin (v1.7.0), grpc and
// log adapter. Reusable for e2e scenarios and benchmarks:
//
//   const host = await buildHost();           // once per file; host.cleanup() in afterAll
//   const run = await runHost(host, { config: 'daemon_socket = "/x.sock"', pids: [42] });
//   run.events('attest') → [{ pid: 42, selector_values: [...] }]
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAIN_JS, REPO } from './build.js';
import { childEnv } from './env.js';

/** The Go module of the test programs (host, Workload API clients) and of the pinned SPIRE. */
export const GO_MODULE = join(REPO, 'test', 'go');

/** The preinstalled Go toolchain, never an older `go` that may come first on PATH. */
export const GO_BIN = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';

/** Environment for `go` commands: module mode, this toolchain only (no download), no VCS stamping. */
export function goEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  delete env['GOPATH'];
  return { ...env, GO111MODULE: 'on', GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false', ...extra };
}

export interface BuiltHost {
  bin: string;
  dir: string;
  buildMs: number;
  cleanup(): void;
}

/** `go build ./cmd/hexr-host` of the test/go module, into a temp dir. */
export async function buildHost(): Promise<BuiltHost> {
  const dir = mkdtempSync(join(tmpdir(), 'hexr-host-'));
  const bin = join(dir, 'host');
  const t0 = performance.now();
  try {
    await promisify(execFile)(GO_BIN, ['build', '-trimpath', '-o', bin, './cmd/hexr-host'], {
      cwd: GO_MODULE,
      env: goEnv(),
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string };
    throw new Error(`building the Go host failed: ${e.stderr ?? e.message}`, { cause: err });
  }
  return { bin, dir, buildMs: performance.now() - t0, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * One line of the host's log, as SPIRE's agent writes it with log_format =
 * "json" (logrus: level, msg, time, fields), with @level / @message added in
 * hclog's terms so tests read both shapes alike (logrus says "warning").
 */
export function normalizeLogLine(l: Record<string, any>): Record<string, any> {
  if (typeof l['msg'] !== 'string' || typeof l['level'] !== 'string') return l;
  const level = l['level'] === 'warning' ? 'warn' : l['level'];
  return { ...l, '@level': level, '@message': l['msg'] };
}

export interface HostOptions {
  /** HCL (or JSON) text sent as hcl_configuration; written to a temp file. */
  config?: string;
  /** PIDs to attest; "host" = the host's own PID, "plugin" = the plugin's PID. */
  pids?: (number | 'host' | 'plugin')[];
  concurrency?: number;
  repeat?: number;
  /** With repeat: start no call after this long (Go duration), even if fewer were made. */
  forAtMost?: string;
  bench?: boolean;
  /** Go duration, e.g. "3s"; implies bench. */
  duration?: string;
  /** With duration: call for this long first, summarized apart (a "warmup" event), then measure. Go duration. */
  warmup?: string;
  /** Per-Attest deadline set by the host (SPIRE sets none), Go duration. */
  callTimeout?: string;
  skipConfigure?: boolean;
  trustDomain?: string;
  /** Host logger level; "debug" shows the plugin's debug lines. */
  logLevel?: string;
  /** The plugin command; default `node dist/main.js plugin`. */
  command?: string[];
  /** Extra environment for host and plugin (go-plugin passes the host's env on). */
  env?: Record<string, string>;
  /** Kill the host (SIGKILL) after this long. */
  timeoutMs?: number;
}

export type HostEvent = Record<string, any> & { event: string };

export interface HostRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  stdout: string;
  stderr: string;
  /** JSON events from stdout, optionally of one kind. */
  events(kind?: string): HostEvent[];
  /** JSON lines from the host's stderr (non-JSON lines dropped), normalized by normalizeLogLine. */
  logLines(): Record<string, any>[];
  /** The plugin's own lines as re-logged by go-plugin (they carry its "timestamp" kv). */
  pluginLogLines(): Record<string, any>[];
}

export async function runHost(host: BuiltHost, opts: HostOptions = {}): Promise<HostRun> {
  const args: string[] = [];
  // Events go to a file, not a pipe: a test process busy elsewhere (the load test forks ~200
  // processes a second) must not hold the host up by reading its stdout slowly.
  const cfgDir = mkdtempSync(join(tmpdir(), 'hexr-hcfg-'));
  const outFile = join(cfgDir, 'events.jsonl');
  args.push('-out', outFile);
  if (opts.config !== undefined) {
    const file = join(cfgDir, 'plugin.conf');
    writeFileSync(file, opts.config);
    args.push('-config', file);
  }
  if (opts.pids?.length) args.push('-pids', opts.pids.join(','));
  if (opts.concurrency) args.push('-concurrency', String(opts.concurrency));
  if (opts.repeat !== undefined) args.push('-repeat', String(opts.repeat));
  if (opts.forAtMost !== undefined) args.push('-for', opts.forAtMost);
  if (opts.bench) args.push('-bench');
  if (opts.duration) args.push('-duration', opts.duration);
  if (opts.warmup) args.push('-warmup', opts.warmup);
  if (opts.callTimeout) args.push('-call-timeout', opts.callTimeout);
  if (opts.skipConfigure) args.push('-skip-configure');
  if (opts.trustDomain) args.push('-trust-domain', opts.trustDomain);
  args.push('-log-level', opts.logLevel ?? 'debug');
  args.push('--', ...(opts.command ?? [process.execPath, MAIN_JS, 'plugin']));

  const env = childEnv({ ...opts.env, WorkloadAttestor: undefined }); // the host must set the cookie itself

  const t0 = performance.now();
  const child = spawn(host.bin, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, opts.timeoutMs ?? 60_000);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve =>
    child.once('close', (c, s) => resolve({ code: c, signal: s })),
  );
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  try {
    stdout += readFileSync(outFile, 'utf8');
  } catch {
    /* the host failed before it created the file */
  }
  rmSync(cfgDir, { recursive: true, force: true });

  const parse = (text: string): Record<string, any>[] =>
    text
      .split('\n')
      .filter(l => l.startsWith('{'))
      .flatMap(l => {
        try {
          return [JSON.parse(l) as Record<string, any>];
        } catch {
          return [];
        }
      });
  const events = parse(stdout) as HostEvent[];
  const logs = parse(stderr).map(normalizeLogLine);
  return {
    code,
    signal,
    wallMs,
    stdout,
    stderr,
    events: kind => (kind === undefined ? events : events.filter(e => e.event === kind)),
    logLines: () => logs,
    pluginLogLines: () => logs.filter(l => typeof l['timestamp'] === 'string'),
  };
}
