// The scenarios of the first benchmark issue: process table, plugin start,
// mapped-PID Attest, marker → mapped, memory. Each prints its figures with a
// same-run baseline.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createProcfs } from '../../src/daemon/procfs.js';
import { ProcTable } from '../../src/daemon/proc-table.js';
import { MAIN_JS, REPO } from '../../test/helpers/build.js';
import { eventually } from '../../test/helpers/env.js';
import { ATTEST_SECONDS, EXTRA_ROLES_PER_POD, PODS, ROLES_PER_POD, populateScript, watchArrivals, writeMarker, type BenchNode } from '../lib/node.js';
import { NOOP_PLUGIN, attestRun, median, pct, report, rssMb, versus } from '../lib/bench.js';

export function processTable(): void {
  const cBin = path.join(os.tmpdir(), `hexr-readstatus-${process.pid}`);
  execFileSync('cc', ['-O2', '-o', cBin, path.join(REPO, 'bench', 'readstatus.c')]);
  const c = JSON.parse(execFileSync(cBin, ['15']).toString()) as { median_ms: number; pids: number };
  fs.rmSync(cBin, { force: true });
  const table = new ProcTable(createProcfs());
  const inner = table as unknown as { cpidOf: Map<number, number>; byCpid: Map<number, Set<number>> };
  const full: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    // The same work as the daemon's full resync, synchronously (fullResync also yields to the event loop).
    inner.cpidOf.clear();
    inner.byCpid.clear();
    table.refreshFull();
    full.push(performance.now() - t);
  }
  const incr: number[] = [];
  const listing: number[] = [];
  table.refresh(); // arms the probe path (records ns_last_pid)
  for (let i = 0; i < 50; i++) {
    let t = performance.now();
    table.refresh(); // probe: only PIDs allocated since the last refresh
    incr.push(performance.now() - t);
    t = performance.now();
    table.refreshFull(); // listing /proc, reading nothing new
    listing.push(performance.now() - t);
  }
  report('3.resync', {
    pids: table.size,
    node_full_ms: median(full),
    c_full_ms: c.median_ms,
    node_over_c: median(full) / c.median_ms,
    incremental_ms: median(incr),
    incremental_over_full: median(incr) / median(full),
    listing_only_ms: median(listing),
    listing_over_full: median(listing) / median(full),
  });
}

export async function pluginStart(): Promise<void> {
  const time = (args: string[], env: NodeJS.ProcessEnv): Promise<number> =>
    new Promise(resolve => {
      const t = performance.now();
      const c = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'ignore'] });
      c.stdout.once('data', () => {
        const ms = performance.now() - t;
        // SIGTERM, not SIGKILL: the plugin then removes its socket file itself.
        c.once('exit', () => resolve(ms));
        c.kill('SIGTERM');
      });
    });
  const plugin: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < 10; i++) {
    bare.push(await time(['-e', 'process.stdout.write("x\\n")'], process.env));
    plugin.push(await time([MAIN_JS, 'plugin'], { ...process.env, WorkloadAttestor: 'WorkloadAttestor' }));
  }
  report('5.plugin_start', { plugin_ms: median(plugin), bare_node_ms: median(bare), ratio: median(plugin) / median(bare) });
}

/** 100 mapped PIDs spread over the pods. */
export async function mappedSample(n: BenchNode): Promise<number[]> {
  const mapped = (await n.daemon.pidmap()).map(e => e.host_pid);
  return mapped.filter((_, i) => i % Math.max(1, Math.floor(mapped.length / 100)) === 0).slice(0, 100);
}

export async function attestMapped(n: BenchNode): Promise<void> {
  const pids = await mappedSample(n);
  for (const concurrency of [1, 32]) {
    const base = await attestRun(n.host, n.daemon, pids, concurrency, ATTEST_SECONDS, NOOP_PLUGIN());
    const ours = await attestRun(n.host, n.daemon, pids, concurrency, ATTEST_SECONDS);
    report(`1.attest_c${concurrency}`, versus(ours, base));
  }
}

export async function markerToMapped(n: BenchNode): Promise<void> {
  const w = watchArrivals(n.daemon);
  await new Promise(r => setTimeout(r, 500));
  const single: number[] = [];
  for (const [pod, hostPid, cpid] of n.spare.slice(0, 100)) {
    const seen = w.waitFor(hostPid);
    const t = performance.now();
    await writeMarker(pod.emptyDir, `single-${cpid}.json`, { agent_name: 'bench', tenant: 't', process_role: `single-${cpid}`, container_pid: cpid });
    await seen;
    single.push(w.arrived.get(hostPid)! - t);
    await new Promise(r => setTimeout(r, 20)); // one marker at a time, as processes start
  }
  const burst = n.spare.slice(100, 1100);
  const t = performance.now();
  await Promise.all(burst.map(([pod, , cpid]) => writeMarker(pod.emptyDir, `burst-${cpid}.json`, { agent_name: 'bench', tenant: 't', process_role: `burst-${cpid}`, container_pid: cpid })));
  const written = performance.now() - t;
  await eventually(() => burst.every(([, hostPid]) => w.arrived.has(hostPid)), 60_000, 'burst mapped');
  const last = Math.max(...burst.map(([, hostPid]) => w.arrived.get(hostPid)!));
  w.close();
  report('2.marker_to_mapped', {
    single_p50_ms: median(single),
    single_p99_ms: pct(single, 0.99),
    single_n: single.length,
    burst_n: burst.length,
    burst_written_ms: written,
    burst_all_mapped_ms: last - t,
  });
}

export async function memory(n: BenchNode): Promise<void> {
  for (const pod of n.pods) await pod.exec(populateScript(0, EXTRA_ROLES_PER_POD, ROLES_PER_POD));
  const want = PODS * (ROLES_PER_POD + EXTRA_ROLES_PER_POD);
  const t = performance.now();
  await eventually(async () => (await n.daemon.get<{ mapped: number }>('/debug/status')).mapped >= want, 300_000, `${want} mappings`);
  const mapTime = performance.now() - t;
  await new Promise(r => setTimeout(r, 3000)); // a liveness pass over every mapping
  const status = await n.daemon.get<{ processes: number; mapped: number; last_resync_ms: number; memory_mb: { heapUsed: number; heapTotal: number } }>('/debug/status');
  const rss = rssMb(n.daemon.pid!);
  report('4.memory', {
    mapped: status.mapped,
    processes: status.processes,
    rss_mb: rss,
    heap_used_mb: status.memory_mb.heapUsed,
    heap_total_mb: status.memory_mb.heapTotal,
    idle_rss_mb: n.idleRss,
    ratio: rss / n.idleRss,
    map_extra_s: mapTime / 1000,
    full_resync_ms: status.last_resync_ms,
  });
}
