// Issue 12, target 2: pod A abuses the node (50,000 marker files and a
// directory event every 300 ms; two processes creating and deleting new file
// names; 20,000 markers claiming a role already held). Meanwhile, for pod B:
// mapped-PID Attest through the go-plugin host (against the same measurement
// just before the abuse), new markers → mapped, unknown PIDs (pod B and host:
// do they reach, and wait in, the daemon?), and the daemon's CPU once the
// abuse stops.
//
// Pod A's processes run in a cpu cgroup with the weight kubelet gives a
// BestEffort pod (cpu.shares 2, as under kubepods/besteffort/): on a node, CPU
// between pods is the kernel's to share, and what is measured here is what the
// daemon's work for pod A costs pod B. HEXR_BENCH_ISOLATION_EQUAL_CPU=1 runs
// them at the default weight instead (two spinning processes on a 2-core
// machine then slow everything, daemon or not).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestPod } from '../../test/helpers/pod.js';
import { cpuWindows, attestRun, median, report, sleep, startLoopProbe } from '../lib/bench.js';
import { daemonAttestCounts, sleepersIn, watchArrivals, writeMarker, type BenchNode } from '../lib/node.js';

const SECONDS = Number(process.env['HEXR_BENCH_ISOLATION_SECONDS'] ?? 5);

const EQUAL_CPU = process.env['HEXR_BENCH_ISOLATION_EQUAL_CPU'] === '1';
const CPU_CGROUP = `/sys/fs/cgroup/cpu/kubepods-bench-${process.pid}/besteffort`;

function makeCpuCgroup(): string | undefined {
  if (EQUAL_CPU || !fs.existsSync('/sys/fs/cgroup/cpu/cpu.shares')) return undefined;
  fs.mkdirSync(CPU_CGROUP, { recursive: true });
  fs.writeFileSync(`${CPU_CGROUP}/cpu.shares`, '2');
  return CPU_CGROUP;
}

function removeCpuCgroup(): void {
  for (const d of [CPU_CGROUP, path.dirname(CPU_CGROUP)]) {
    try {
      fs.rmdirSync(d);
    } catch {
      /* not made, or still holds a process that is exiting */
    }
  }
}

let cpuCgroup: string | undefined;

/** A child Node process of pod A running `code` (not on the bench's own event loop), in pod A's cpu cgroup. */
function nodeChild(code: string): ChildProcess {
  if (!cpuCgroup) return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  return spawn('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec "$2" -e "$3"', 'sh', cpuCgroup, process.execPath, code], { stdio: 'ignore' });
}

function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise(r => {
    c.once('exit', () => r());
    c.kill('SIGKILL');
  });
}

/** Writes `count` marker files named `${prefix}N.json` into `dir` with `body(i)`, from a child process. */
async function writeMany(dir: string, prefix: string, count: number, body: string): Promise<void> {
  const c = nodeChild(`const fs = require('fs'); for (let i = 0; i < ${count}; i++) fs.writeFileSync(${JSON.stringify(dir)} + '/${prefix}' + i + '.json', ${body});`);
  await new Promise(r => c.once('exit', r));
}

async function removeJunk(dir: string, prefix: string): Promise<void> {
  const c = nodeChild(`const fs = require('fs'); for (const n of fs.readdirSync(${JSON.stringify(dir)})) if (n.startsWith('${prefix}')) fs.rmSync(${JSON.stringify(dir)} + '/' + n, { force: true, recursive: true });`);
  await new Promise(r => c.once('exit', r));
}

interface Abuse {
  name: string;
  /** Starts the abuse in pod A; returns how to stop it (and clean up). */
  start(a: TestPod, n: BenchNode): Promise<() => Promise<void>>;
}

const ABUSES: Abuse[] = [
  {
    name: 'markers_50k',
    async start(a) {
      await writeMany(a.emptyDir, 'junk-', 50_000, `JSON.stringify({ agent_name: 'a', tenant: 't', process_role: 'j' + i, container_pid: 200000 + i })`);
      let n = 0;
      const t = setInterval(() => {
        // A "directory event": the directory touched, a subdirectory created and removed.
        const d = `${a.emptyDir}/sub-${n++}`;
        try {
          fs.utimesSync(a.emptyDir, new Date(), new Date());
          fs.mkdirSync(d);
          fs.rmdirSync(d);
        } catch {
          /* racing the cleanup */
        }
      }, 300);
      return async () => {
        clearInterval(t);
        await removeJunk(a.emptyDir, 'junk-');
      };
    },
  },
  {
    name: 'create_delete_spam',
    start(a) {
      const spam = (k: number): ChildProcess =>
        nodeChild(`const fs = require('fs'); const p = ${JSON.stringify(a.emptyDir)} + '/spam${k}-'; for (let i = 0; ; i++) { fs.writeFileSync(p + i + '.json', '{}'); fs.unlinkSync(p + i + '.json'); }`);
      const kids = [spam(1), spam(2)];
      return Promise.resolve(async () => {
        for (const c of kids) await stopChild(c);
        await removeJunk(a.emptyDir, 'spam');
      });
    },
  },
  {
    name: 'conflicts_20k',
    async start(a, n) {
      const holder = (await n.daemon.pidmap()).find(e => e.pod_uid === a.uid && e.process_role === 'r0');
      if (!holder) throw new Error('pod A has no r0 holder');
      await writeMany(a.emptyDir, 'claim-', 20_000, `JSON.stringify({ agent_name: 'bench', tenant: 't', process_role: 'r0', container_pid: ${holder.container_pid} })`);
      return () => removeJunk(a.emptyDir, 'claim-');
    },
  },
];

export async function isolation(n: BenchNode): Promise<void> {
  const [a, b] = [n.pods[0]!, n.pods[1]!];
  const bMapped = (await n.daemon.pidmap()).filter(e => e.pod_uid === b.uid).map(e => e.host_pid);
  const bUnknown = (await sleepersIn(b, 10)).map(([h]) => h);
  const fresh = await sleepersIn(b, 10 * ABUSES.length);
  const hostUnknown: ChildProcess[] = Array.from({ length: 10 }, () => spawn('sleep', ['100000'], { stdio: 'ignore' }));
  const unknown = [...bUnknown, ...hostUnknown.map(c => c.pid as number)];
  cpuCgroup = makeCpuCgroup();
  try {
    for (const [k, abuse] of ABUSES.entries()) {
      const quiet = await attestRun(n.host, n.daemon, bMapped, 4, SECONDS);
      const stop = await abuse.start(a, n);
      await sleep(2000);
      // Beside it, what the machine does to anybody: an idle Node process's loop, and steal.
      const probe = startLoopProbe();
      const [during, cpuDuring] = await Promise.all([attestRun(n.host, n.daemon, bMapped, 4, SECONDS), cpuWindows(n.daemon.pid!, SECONDS)]);
      const idle = await probe.stop();
      // Unknown PIDs outside pod A: answered by the plugin, never by (or waiting in) the daemon.
      const before = await daemonAttestCounts(n.daemon);
      const unknownRun = await attestRun(n.host, n.daemon, unknown, 4, 2);
      const after = await daemonAttestCounts(n.daemon);
      // Pod B's new markers while A abuses.
      const w = watchArrivals(n.daemon);
      const newMarker: number[] = [];
      for (const [hostPid, cpid] of fresh.slice(10 * k, 10 * k + 10)) {
        const seen = w.waitFor(hostPid);
        const t = performance.now();
        await writeMarker(b.emptyDir, `iso-${abuse.name}-${cpid}.json`, { agent_name: 'bench', tenant: 't', process_role: `iso-${cpid}`, container_pid: cpid });
        await Promise.race([seen, sleep(10_000)]);
        newMarker.push((w.arrived.get(hostPid) ?? Infinity) - t);
      }
      w.close();
      const status = await n.daemon.get<{ work: Record<string, unknown>; flooded_context_dirs: number }>('/debug/status');
      await stop();
      const cpu = await cpuWindows(n.daemon.pid!, 10);
      report(`6.isolation_${abuse.name}`, {
        b_mapped_p99_ms: during.p99_ms,
        b_mapped_max_ms: during.max_ms,
        b_quiet_p99_ms: quiet.p99_ms,
        b_p99_ratio: during.p99_ms / quiet.p99_ms,
        b_errors: during.errors,
        b_answers: during.answers ?? {},
        idle_node_loop_max_ms: idle.max_ms,
        steal_ms: idle.steal_ms,
        b_new_marker_p50_ms: median(newMarker),
        b_new_marker_max_ms: Math.max(...newMarker),
        unknown_p99_ms: unknownRun.p99_ms,
        unknown_max_ms: unknownRun.max_ms,
        unknown_reaching_daemon: after.calls - before.calls,
        unknown_waited_in_daemon: after.waits - before.waits,
        throttled_pods: (status.work['throttled_pods'] as string[]).length,
        flooded_dirs: status.flooded_context_dirs,
        pod_a_cpu_shares: cpuCgroup ? 2 : 'default',
        daemon_cpu_during: Math.round(median(cpuDuring) * 100),
        daemon_cpu_after_stop: cpu.map(x => Math.round(x * 100)),
        daemon_cpu_last5s_max: Math.max(...cpu.slice(5)),
      });
    }
  } finally {
    for (const c of hostUnknown) c.kill('SIGKILL');
    removeCpuCgroup();
  }
}
