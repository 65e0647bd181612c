// Issue 12, target 1: Attest for PIDs that hold no role (a process of a pod
// without a marker, a host process), through the go-plugin host, against
// the do-nothing plugin on the same transport. The plugin answers them from
// its copy of the daemon's state: no second hop.
import { spawn, type ChildProcess } from 'node:child_process';
import { ATTEST_SECONDS, daemonAttestCounts, sleepersIn, type BenchNode } from '../lib/node.js';
import { NOOP_PLUGIN, attestRun, report, versus } from '../lib/bench.js';

export async function attestUnknown(n: BenchNode): Promise<void> {
  const inPods: number[] = [];
  for (const pod of n.pods.slice(0, 5)) for (const [h] of await sleepersIn(pod, 10)) inPods.push(h);
  const onHost: ChildProcess[] = Array.from({ length: 50 }, () => spawn('sleep', ['100000'], { stdio: 'ignore' }));
  try {
    const pids = [...inPods, ...onHost.map(c => c.pid as number)];
    for (const concurrency of [1, 32]) {
      const base = await attestRun(n.host, n.daemon, pids, concurrency, ATTEST_SECONDS, NOOP_PLUGIN());
      const before = (await daemonAttestCounts(n.daemon)).calls;
      const ours = await attestRun(n.host, n.daemon, pids, concurrency, ATTEST_SECONDS);
      const reached = (await daemonAttestCounts(n.daemon)).calls - before;
      report(`1u.attest_unknown_c${concurrency}`, { ...versus(ours, base), daemon_calls: reached, calls: Math.round(ours.throughput_rps * ATTEST_SECONDS) });
    }
  } finally {
    for (const c of onHost) c.kill('SIGKILL');
  }
}
