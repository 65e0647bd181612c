// Shared by the benchmark scenarios: reporting (every figure printed, and kept
// for bench/results.json), statistics, process measurements, and Attest runs
// through the go-plugin host. Nothing here asserts a time.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoopDelay } from '../../src/loop-delay.js';
import { MAIN_JS, REPO } from '../../test/helpers/build.js';
import type { DaemonProcess } from '../../test/helpers/daemon.js';
import { runHost, type BuiltHost, type HostRun } from '../../test/helpers/go-host.js';

const results: Record<string, unknown> = {};
const lines: string[] = [];

export function report(name: string, figures: Record<string, unknown>): void {
  results[name] = figures;
  const text = `${name}: ${Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 1000) / 1000 : JSON.stringify(v)}`)
    .join('  ')}`;
  lines.push(text);
  console.log(text);
}

/** Writes bench/results.json (merged with what other bench files wrote) and prints the summary. */
export function writeResults(): void {
  const file = path.join(REPO, 'bench', 'results.json');
  let old: Record<string, unknown> = {};
  try {
    old = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    /* first run */
  }
  fs.writeFileSync(file, `${JSON.stringify({ ...old, ...results }, null, 2)}\n`);
  console.log(`\n=== benchmark summary ===\n${lines.join('\n')}\n(bench/results.json)`);
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)] ?? NaN;
};
export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Time the hypervisor did not run this VM's vCPUs ("steal", summed over them), ms since boot:
 * the 8th field of /proc/stat's "cpu" line, in USER_HZ ticks.
 */
function stealMs(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  return Number(f[8]) * 10;
}

/** CPU use of `pid` (share of one core) over consecutive windows of `windowMs`. */
export async function cpuWindows(pid: number, windows: number, windowMs = 1000): Promise<number[]> {
  const out: number[] = [];
  let last = cpuSeconds(pid);
  let at = performance.now();
  for (let i = 0; i < windows; i++) {
    await sleep(windowMs);
    const now = cpuSeconds(pid);
    const t = performance.now();
    out.push((now - last) / ((t - at) / 1000));
    last = now;
    at = t;
  }
  return out;
}

/**
 * A Node process that does nothing but measure its own event-loop delay with
 * the daemon's and the plugin's monitor (src/loop-delay.ts): the same-run
 * baseline of their loop delays. What it sees is the machine (CPU shared with
 * everything else, a vCPU left unscheduled), not anybody's code; with it, the
 * VM's steal over the same time.
 */
export function startLoopProbe(): { stop(): Promise<LoopDelay & { steal_ms: number }> } {
  const steal0 = stealMs();
  const url = JSON.stringify(pathToFileURL(path.join(path.dirname(MAIN_JS), 'loop-delay.js')).href);
  const code = `import { LoopDelayMonitor } from ${url}; const m = new LoopDelayMonitor(); m.start(); setInterval(() => {}, 1000);
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify(m.read())); process.exit(0); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.once('exit', () => {
          try {
            resolve({ ...(JSON.parse(out) as LoopDelay), steal_ms: stealMs() - steal0 });
          } catch (e) {
            reject(new Error(`loop probe: ${String(e)} (${out})`));
          }
        });
        child.kill('SIGTERM');
      }),
  };
}

export interface AttestFigures {
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  throughput_rps: number;
  errors: number;
  /** The plugin's event-loop delay once its copy was complete (its last log line): the plain maximum and the on-CPU one. */
  plugin_loop_max_ms?: number;
  plugin_loop_max_on_cpu_ms?: number;
  /** The same from its start until its copy was complete (the copy line). */
  plugin_startup_loop_max_ms?: number;
  plugin_startup_loop_max_on_cpu_ms?: number;
  /** How the plugin answered (its last log line, warm-up included): from its copy, after waiting for it, by the daemon. */
  answers?: Record<string, number>;
  /** How long after the plugin opened its WatchMap stream its copy was complete (its log line). */
  copy_synced_ms?: number;
  /** The calls of the warm-up (not in the figures above). */
  warmup?: { calls: number; errors: number; p99_ms: number; max_ms: number };
}

/**
 * Every Attest run calls for this long before it measures: the host has just
 * started the plugin (SPIRE starts it once, with the agent), whose copy of
 * the daemon's state is still arriving. What the warm-up saw is printed apart.
 */
export const WARMUP_SECONDS = Number(process.env['HEXR_BENCH_WARMUP_SECONDS'] ?? 1);
if (!Number.isFinite(WARMUP_SECONDS) || WARMUP_SECONDS < 0) throw new Error(`HEXR_BENCH_WARMUP_SECONDS: not a number of seconds >= 0: ${process.env['HEXR_BENCH_WARMUP_SECONDS']}`);

/**
 * Attest `pids` (in turn) through the go-plugin host for `seconds` at `concurrency`,
 * with our plugin or `command` (the do-nothing baseline).
 */
export async function attestRun(host: BuiltHost, daemon: DaemonProcess, pids: number[], concurrency: number, seconds: number, command?: string[]): Promise<AttestFigures> {
  const r: HostRun = await runHost(host, {
    config: `daemon_socket = "${daemon.socket}"\n\nattest_timeout = "2s"`,
    pids,
    concurrency,
    duration: `${seconds}s`,
    ...(WARMUP_SECONDS > 0 ? { warmup: `${WARMUP_SECONDS}s` } : {}),
    logLevel: 'info',
    timeoutMs: (seconds + WARMUP_SECONDS + 60) * 1000,
    // HEXR_PLUGIN_NODE_ARGS: extra Node flags for our plugin, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
    ...(command ? { command } : process.env['HEXR_PLUGIN_NODE_ARGS'] ? { command: [process.execPath, ...process.env['HEXR_PLUGIN_NODE_ARGS'].split(' ').filter(Boolean), MAIN_JS, 'plugin'] } : {}),
  });
  const b = r.events('bench')[0] as Record<string, number> | undefined;
  if (!b) throw new Error(`no bench result: ${r.stderr.slice(-2000)}`);
  const stopped = r.pluginLogLines().find(l => l['@message'] === 'plugin stopped' || l['msg'] === 'plugin stopped');
  const loop = stopped?.['event_loop_delay_max_ms'] as number | undefined;
  const loopOnCpu = stopped?.['event_loop_delay_max_on_cpu_ms'] as number | undefined;
  const answers = stopped?.['attest_answers'] as Record<string, number> | undefined;
  const warm = r.events('warmup')[0] as Record<string, number> | undefined;
  const copied = r.pluginLogLines().find(l => (l['@message'] ?? l['msg']) === "copy of the daemon's state complete");
  const synced = copied?.['ms'] as number | undefined;
  const startup = copied?.['event_loop_delay_max_ms'] as number | undefined;
  const startupOnCpu = copied?.['event_loop_delay_max_on_cpu_ms'] as number | undefined;
  return {
    p50_ms: b['p50_ms'] as number,
    p99_ms: b['p99_ms'] as number,
    p999_ms: b['p999_ms'] as number,
    max_ms: b['max_ms'] as number,
    throughput_rps: b['throughput_rps'] as number,
    errors: b['errors'] as number,
    ...(loop !== undefined ? { plugin_loop_max_ms: loop } : {}),
    ...(loopOnCpu !== undefined ? { plugin_loop_max_on_cpu_ms: loopOnCpu } : {}),
    ...(startup !== undefined ? { plugin_startup_loop_max_ms: startup } : {}),
    ...(startupOnCpu !== undefined ? { plugin_startup_loop_max_on_cpu_ms: startupOnCpu } : {}),
    ...(answers ? { answers } : {}),
    ...(synced !== undefined ? { copy_synced_ms: synced } : {}),
    ...(warm ? { warmup: { calls: warm['calls'] as number, errors: warm['errors'] as number, p99_ms: warm['p99_ms'] as number, max_ms: warm['max_ms'] as number } } : {}),
  };
}

/** Our figures against the baseline's, with the two ratios the targets are about. */
export function versus(ours: AttestFigures, base: AttestFigures): Record<string, number> {
  return {
    p50_ms: ours.p50_ms,
    p99_ms: ours.p99_ms,
    max_ms: ours.max_ms,
    rps: ours.throughput_rps,
    errors: ours.errors,
    base_p50_ms: base.p50_ms,
    base_p99_ms: base.p99_ms,
    base_rps: base.throughput_rps,
    p99_ratio: ours.p99_ms / base.p99_ms,
    rps_ratio: ours.throughput_rps / base.throughput_rps,
  };
}

export const NOOP_PLUGIN = (): string[] => [process.execPath, path.join(REPO, 'bench', 'noop-plugin.mjs')];
