// `npm run bench`: every scenario of the benchmark issue on a node populated
// for real (≥ 5,000 processes in ≥ 50 PID namespaces, ≥ 1,000 mapped role
// processes), each figure printed with its ratio to a baseline measured in the
// same run. Nothing here asserts a time: the figures are for reading.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createProcfs } from '../src/daemon/procfs.js';
import { ProcTable } from '../src/daemon/proc-table.js';
import { ensureBuilt, MAIN_JS, REPO } from '../test/helpers/build.js';
import { DaemonProcess } from '../test/helpers/daemon.js';
import { GO_SKIP, ROOT_SKIP, eventually } from '../test/helpers/env.js';
import { buildHost, runHost, type BuiltHost } from '../test/helpers/go-host.js';
import { TestPod, childrenOf, nspidOf, shq } from '../test/helpers/pod.js';

const PODS = Number(process.env['HEXR_BENCH_PODS'] ?? 50);
const PLAIN_PER_POD = Number(process.env['HEXR_BENCH_PLAIN'] ?? 80);
const ROLES_PER_POD = Number(process.env['HEXR_BENCH_ROLES'] ?? 20);
const EXTRA_ROLES_PER_POD = Number(process.env['HEXR_BENCH_EXTRA_ROLES'] ?? 180);
const ATTEST_SECONDS = Number(process.env['HEXR_BENCH_ATTEST_SECONDS'] ?? 5);

const results: Record<string, unknown> = {};
const lines: string[] = [];
function report(name: string, figures: Record<string, unknown>): void {
  results[name] = figures;
  const text = `${name}: ${Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v * 1000) / 1000 : JSON.stringify(v)}`)
    .join('  ')}`;
  lines.push(text);
  console.log(text);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)] ?? NaN;
};

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A shell script that starts `plain` sleepers and `roles` marker-writing role processes (roles named from `first`). */
function populateScript(plain: number, roles: number, first: number): string {
  const writer = (i: number): string => {
    const f = `/tmp/hexr-context/r${i}.json`;
    const json = `{"agent_name":"bench","tenant":"t","process_role":"r${i}","container_pid":%s}`;
    return `sh -c ${shq(`printf '${json}' $$ > ${f}.tmp && mv ${f}.tmp ${f} && exec sleep 100000`)} &`;
  };
  const parts = [`i=0; while [ $i -lt ${plain} ]; do sleep 100000 & i=$((i+1)); done`];
  for (let i = first; i < first + roles; i++) parts.push(writer(i));
  parts.push('wait');
  return parts.join('\n');
}

async function writeMarker(dir: string, name: string, fields: Record<string, unknown>): Promise<void> {
  const tmp = path.join(dir, `.${name}.tmp`);
  await fs.promises.writeFile(tmp, JSON.stringify(fields));
  await fs.promises.rename(tmp, path.join(dir, name));
}

const skip = ROOT_SKIP ?? GO_SKIP;
if (skip) console.log(`[skip] bench: ${skip}`);

describe.skipIf(skip)('benchmarks', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  let host: BuiltHost;
  const pods: TestPod[] = [];
  /** Processes without a marker, for the marker→mapped scenarios: [pod, hostPid, cpid]. */
  const spare: [TestPod, number, number][] = [];
  let idleRss = 0;

  beforeAll(async () => {
    await ensureBuilt();
    host = await buildHost();
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-bench-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--log-level', 'info'] });
    await daemon.start();
    await new Promise(r => setTimeout(r, 1000));
    idleRss = rssMb(daemon.pid!);

    const t0 = performance.now();
    const shapes = ['v1-cgroupfs', 'v2-systemd-containerd', 'v2-systemd-crio'] as const;
    for (let i = 0; i < PODS; i++) {
      const pod = await TestPod.create(kubelet, shapes[i % 3]!);
      pods.push(pod);
      await pod.exec(populateScript(PLAIN_PER_POD, ROLES_PER_POD, 0));
    }
    // Spare, marker-less processes in the first 11 pods (110 each): 100 single + 1,000 burst markers.
    for (const pod of pods.slice(0, 11)) {
      const sh = await pod.exec('i=0; while [ $i -lt 110 ]; do sleep 100000 & i=$((i+1)); done; wait');
      const kids = await eventually(() => {
        const k = childrenOf(sh.hostPid);
        return k.length === 110 ? k : undefined;
      }, 30_000, 'spare processes');
      for (const k of kids) spare.push([pod, k, nspidOf(k).at(-1)!]);
    }
    const want = PODS * ROLES_PER_POD;
    await eventually(async () => (await daemon.get<{ mapped: number }>('/debug/status')).mapped >= want, 120_000, `${want} mappings`);
    const status = await daemon.get<{ processes: number; mapped: number }>('/debug/status');
    const namespaces = new Set<string>();
    for (const p of fs.readdirSync('/proc').filter(n => /^\d+$/.test(n))) {
      try {
        namespaces.add(fs.readlinkSync(`/proc/${p}/ns/pid`));
      } catch {
        /* gone, or not ours to read */
      }
    }
    report('population', {
      processes: status.processes,
      pid_namespaces: namespaces.size,
      mapped: status.mapped,
      pods: PODS,
      setup_s: (performance.now() - t0) / 1000,
      machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? '?'}`,
      node: process.version,
      date: new Date().toISOString().slice(0, 10),
    });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const p of pods) await p.destroy();
    host?.cleanup();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
    fs.writeFileSync(path.join(REPO, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n=== benchmark summary ===\n${lines.join('\n')}\n(bench/results.json)`);
  });

  it('3. process table: full resync vs C, incremental vs full', () => {
    const cBin = path.join(os.tmpdir(), `hexr-readstatus-${process.pid}`);
    execFileSync('cc', ['-O2', '-o', cBin, path.join(REPO, 'bench', 'readstatus.c')]);
    const c = JSON.parse(execFileSync(cBin, ['15']).toString()) as { median_ms: number; pids: number };
    fs.rmSync(cBin, { force: true });
    const table = new ProcTable(createProcfs());
    const full: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = performance.now();
      // The same work as the daemon's full resync, synchronously (fullResync also yields to the event loop).
      (table as unknown as { cpidOf: Map<number, number>; byCpid: Map<number, Set<number>> }).cpidOf.clear();
      (table as unknown as { cpidOf: Map<number, number>; byCpid: Map<number, Set<number>> }).byCpid.clear();
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
  });

  it('5. plugin start: exec → handshake line', async () => {
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
  });

  it('1. Attest through the go-plugin host, vs a do-nothing handler of the same transport', async () => {
    const mapped = (await daemon.pidmap()).map(e => e.host_pid);
    const pids = mapped.filter((_, i) => i % Math.max(1, Math.floor(mapped.length / 100)) === 0).slice(0, 100);
    const config = `daemon_socket = "${daemon.socket}"\n\nattest_timeout = "2s"`;
    for (const concurrency of [1, 32]) {
      const run = async (command?: string[]) => {
        const r = await runHost(host, {
          config,
          pids,
          concurrency,
          duration: `${ATTEST_SECONDS}s`,
          logLevel: 'warn',
          timeoutMs: (ATTEST_SECONDS + 60) * 1000,
          ...(command ? { command } : {}),
        });
        const b = r.events('bench')[0];
        if (!b) throw new Error(`no bench result: ${r.stderr.slice(-2000)}`);
        return b;
      };
      const base = await run([process.execPath, path.join(REPO, 'bench', 'noop-plugin.mjs')]);
      const ours = await run();
      report(`1.attest_c${concurrency}`, {
        p50_ms: ours['p50_ms'],
        p99_ms: ours['p99_ms'],
        p999_ms: ours['p999_ms'],
        rps: ours['throughput_rps'],
        errors: ours['errors'],
        base_p50_ms: base['p50_ms'],
        base_p99_ms: base['p99_ms'],
        base_p999_ms: base['p999_ms'],
        base_rps: base['throughput_rps'],
        p99_ratio: ours['p99_ms'] / base['p99_ms'],
        rps_ratio: ours['throughput_rps'] / base['throughput_rps'],
      });
    }
  });

  it('2. marker → mapped: single markers and a burst of 1,000', async () => {
    // Arrival of each mapping is observed on the daemon's own WatchMap stream
    // (no polling that would steal CPU from the daemon).
    const def = protoLoader.loadSync('hexr/pidmapper/v1/pidmapper.proto', { keepCase: true, longs: String, defaults: true, includeDirs: [path.join(REPO, 'proto')] });
    const Ctor = (grpc.loadPackageDefinition(def) as any).hexr.pidmapper.v1.PidMapper as grpc.ServiceClientConstructor;
    const client = new Ctor(`unix:${daemon.socket}`, grpc.credentials.createInsecure()) as any;
    const arrived = new Map<number, number>();
    const waiters = new Map<number, () => void>();
    const stream = client.WatchMap({});
    stream.on('data', (u: { upserts: { host_pid: number }[] }) => {
      const now = performance.now();
      for (const e of u.upserts) {
        if (!arrived.has(e.host_pid)) arrived.set(e.host_pid, now);
        waiters.get(e.host_pid)?.();
      }
    });
    stream.on('error', () => undefined);
    await new Promise(r => setTimeout(r, 500));
    const single: number[] = [];
    for (const [pod, hostPid, cpid] of spare.slice(0, 100)) {
      const seen = new Promise<void>(resolve => waiters.set(hostPid, resolve));
      const t = performance.now();
      await writeMarker(pod.emptyDir, `single-${cpid}.json`, { agent_name: 'bench', tenant: 't', process_role: `single-${cpid}`, container_pid: cpid });
      await seen;
      single.push(arrived.get(hostPid)! - t);
      await new Promise(r => setTimeout(r, 20)); // one marker at a time, as processes start
    }
    const burst = spare.slice(100, 1100);
    const t = performance.now();
    await Promise.all(burst.map(([pod, , cpid]) => writeMarker(pod.emptyDir, `burst-${cpid}.json`, { agent_name: 'bench', tenant: 't', process_role: `burst-${cpid}`, container_pid: cpid })));
    const written = performance.now() - t;
    await eventually(() => burst.every(([, hostPid]) => arrived.has(hostPid)), 60_000, 'burst mapped');
    const last = Math.max(...burst.map(([, hostPid]) => arrived.get(hostPid)!));
    stream.cancel();
    client.close();
    report('2.marker_to_mapped', {
      single_p50_ms: median(single),
      single_p99_ms: pct(single, 0.99),
      single_n: single.length,
      burst_n: burst.length,
      burst_written_ms: written,
      burst_all_mapped_ms: last - t,
    });
  });

  it('4. memory: daemon RSS with 10,000 mapped processes', async () => {
    for (const pod of pods) {
      await pod.exec(populateScript(0, EXTRA_ROLES_PER_POD, ROLES_PER_POD));
    }
    const want = PODS * (ROLES_PER_POD + EXTRA_ROLES_PER_POD);
    const t = performance.now();
    await eventually(async () => (await daemon.get<{ mapped: number }>('/debug/status')).mapped >= want, 300_000, `${want} mappings`);
    const mapTime = performance.now() - t;
    await new Promise(r => setTimeout(r, 3000)); // a liveness pass over every mapping
    const status = await daemon.get<{ processes: number; mapped: number; last_resync_ms: number; memory_mb: { heapUsed: number; heapTotal: number } }>('/debug/status');
    const rss = rssMb(daemon.pid!);
    report('4.memory', {
      mapped: status.mapped,
      processes: status.processes,
      rss_mb: rss,
      heap_used_mb: status.memory_mb.heapUsed,
      heap_total_mb: status.memory_mb.heapTotal,
      idle_rss_mb: idleRss,
      ratio: rss / idleRss,
      map_extra_s: mapTime / 1000,
      full_resync_ms: status.last_resync_ms,
    });
  });
});
