// Issue 12, target 3: scale under churn. 11,000 mapped, ~200 process starts a
// second (host and pods), role processes starting and exiting with their
// markers, and 32 callers mixing mapped and unknown PIDs through the go-plugin
// host; against the same mix at 1,000 mapped on a quiet node, same run. The
// daemon's and the plugin's event-loop delays are measured over the run.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { TestPod } from '../../test/helpers/pod.js';
import { attestRun, cpuWindows, median, report, startLoopProbe, type AttestFigures } from '../lib/bench.js';
import type { LoopDelay } from '../../src/loop-delay.js';
import { ATTEST_SECONDS, daemonAttestCounts, sleepersIn, type BenchNode } from '../lib/node.js';
import { mappedSample } from './classic.js';

interface LoopStatus {
  event_loop_delay: LoopDelay;
}

let quiet: AttestFigures | undefined;
let unknownPids: number[] = [];
const hostSleepers: ChildProcess[] = [];

async function mixedPids(n: BenchNode): Promise<number[]> {
  if (unknownPids.length === 0) {
    for (const [h] of await sleepersIn(n.pods[2]!, 25)) unknownPids.push(h);
    for (let i = 0; i < 25; i++) hostSleepers.push(spawn('sleep', ['100000'], { stdio: 'ignore' }));
    unknownPids = [...unknownPids, ...hostSleepers.map(c => c.pid as number)];
  }
  const mapped = await mappedSample(n);
  const out: number[] = [];
  // Two mapped for one unknown, interleaved.
  for (let i = 0; i < mapped.length; i++) {
    out.push(mapped[i]!);
    if (i % 2 === 1) out.push(unknownPids[(i >> 1) % unknownPids.length]!);
  }
  return out;
}

/**
 * One measured run of the mix (32 callers): the daemon's loop-delay figures
 * restarted, an idle Node process beside it, the daemon's CPU and the calls
 * that reached it counted over the run.
 */
async function measureMix(n: BenchNode, pids: number[], seconds: number): Promise<{ figures: AttestFigures; daemonCpu: number; reached: number; idle: LoopDelay & { steal_ms: number }; status: LoopStatus }> {
  await n.daemon.get('/debug/status?reset_loop_delay=1');
  const probe = startLoopProbe();
  const calls0 = (await daemonAttestCounts(n.daemon)).calls;
  const [figures, cpu] = await Promise.all([attestRun(n.host, n.daemon, pids, 32, seconds), cpuWindows(n.daemon.pid!, seconds - 1)]);
  const reached = (await daemonAttestCounts(n.daemon)).calls - calls0;
  const idle = await probe.stop();
  const status = await n.daemon.get<LoopStatus>('/debug/status');
  return { figures, daemonCpu: Math.round(median(cpu) * 100), reached, idle, status };
}

/**
 * The event-loop maxima of the daemon, the plugin and the idle process: plain,
 * and counting only the CPU time each thread used, the part its code is
 * answerable for (src/loop-delay.ts). The plugin's run from its first complete
 * copy to its exit (the rest of the warm-up included), its start-up apart.
 */
function loopFigures(daemon: LoopDelay, plugin: AttestFigures, idle: LoopDelay): Record<string, number> {
  return {
    daemon_loop_max_ms: daemon.max_ms,
    plugin_loop_max_ms: plugin.plugin_loop_max_ms ?? NaN,
    idle_node_loop_max_ms: idle.max_ms,
    daemon_loop_max_on_cpu_ms: daemon.max_on_cpu_ms ?? NaN,
    plugin_loop_max_on_cpu_ms: plugin.plugin_loop_max_on_cpu_ms ?? NaN,
    idle_node_loop_max_on_cpu_ms: idle.max_on_cpu_ms ?? NaN,
    plugin_startup_loop_max_ms: plugin.plugin_startup_loop_max_ms ?? NaN,
    plugin_startup_loop_max_on_cpu_ms: plugin.plugin_startup_loop_max_on_cpu_ms ?? NaN,
  };
}

/** The quiet baseline: the mix at 1,000 mapped, nothing else going on. */
export async function quietMix(n: BenchNode): Promise<void> {
  const pids = await mixedPids(n);
  const m = await measureMix(n, pids, ATTEST_SECONDS);
  quiet = m.figures;
  report('7q.quiet_mix_c32', {
    p50_ms: quiet.p50_ms,
    p99_ms: quiet.p99_ms,
    rps: quiet.throughput_rps,
    daemon_calls: m.reached,
    daemon_cpu: m.daemonCpu,
    ...loopFigures(m.status.event_loop_delay, quiet, m.idle),
    steal_ms: m.idle.steal_ms,
    answers: quiet.answers ?? {},
    copy_synced_ms: quiet.copy_synced_ms ?? NaN,
    warmup: quiet.warmup ?? {},
  });
}

function churnIn(pod: TestPod, script: string): Promise<{ stop(): void }> {
  return pod.exec(script).then(p => ({ stop: () => p.handle.kill('SIGKILL') }));
}

export async function churn(n: BenchNode): Promise<void> {
  const pids = await mixedPids(n);
  const mapped = (await n.daemon.get<{ mapped: number }>('/debug/status')).mapped;
  // ~200 starts a second: short-lived processes in four pods (each loop starts two a turn,
  // 30-80 a second depending on the machine's load), and the role processes below.
  const plain = 'while :; do sleep 0.3 & sleep 0.025; done';
  const loops = [];
  for (const i of [3, 4, 6, 7]) loops.push(await churnIn(n.pods[i]!, plain));
  // Marker churn: role processes that write their marker, live a second, exit; role names cycle.
  const json = `{"agent_name":"bench","tenant":"t","process_role":"churn%s","container_pid":%s}`;
  const roleLoop = `i=0; while :; do i=$((i+1)); r=$((i % 50)); sh -c "printf '${json}' $r \\$\\$ > /tmp/hexr-context/.c$r.tmp && mv /tmp/hexr-context/.c$r.tmp /tmp/hexr-context/churn$r.json && exec sleep 1" & sleep 0.05; done`;
  loops.push(await churnIn(n.pods[5]!, roleLoop));
  try {
    await new Promise(r => setTimeout(r, 2000));
    const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    const starts0 = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
    const t0 = performance.now();
    const { figures: ours, daemonCpu, reached, idle, status: s } = await measureMix(n, pids, ATTEST_SECONDS * 2);
    const secs = (performance.now() - t0) / 1000;
    const starts1 = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
    report('7.churn_mix_c32', {
      mapped,
      process_starts_per_s: ((starts1 - starts0 + pidMax) % pidMax) / secs,
      p50_ms: ours.p50_ms,
      p99_ms: ours.p99_ms,
      max_ms: ours.max_ms,
      rps: ours.throughput_rps,
      errors: ours.errors,
      daemon_calls: reached,
      daemon_cpu: daemonCpu,
      quiet_p99_ms: quiet?.p99_ms ?? NaN,
      p99_ratio: ours.p99_ms / (quiet?.p99_ms ?? NaN),
      daemon_loop_p99_ms: s.event_loop_delay.p99_ms,
      idle_node_loop_p99_ms: idle.p99_ms,
      ...loopFigures(s.event_loop_delay, ours, idle),
      steal_ms: idle.steal_ms,
      answers: ours.answers ?? {},
      copy_synced_ms: ours.copy_synced_ms ?? NaN,
      warmup: ours.warmup ?? {},
    });
  } finally {
    for (const l of loops) l.stop();
    for (const c of hostSleepers) c.kill('SIGKILL');
  }
}
