// A node populated for real for the benchmarks: pods (real PID + mount
// namespaces, kubepods cgroups v1 and v2, bind-mounted emptyDirs), each with
// plain processes and marker-writing role processes, the daemon watching
// them, and the go-plugin host built.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { REPO } from '../../test/helpers/build.js';
import { DaemonProcess, attestCallsTotal, metricValue } from '../../test/helpers/daemon.js';
import { eventually } from '../../test/helpers/env.js';
import { buildHost, type BuiltHost } from '../../test/helpers/go-host.js';
import { TestPod, childrenOf, nspidOf, shq } from '../../test/helpers/pod.js';

export const PODS = Number(process.env['HEXR_BENCH_PODS'] ?? 50);
export const PLAIN_PER_POD = Number(process.env['HEXR_BENCH_PLAIN'] ?? 80);
export const ROLES_PER_POD = Number(process.env['HEXR_BENCH_ROLES'] ?? 20);
export const EXTRA_ROLES_PER_POD = Number(process.env['HEXR_BENCH_EXTRA_ROLES'] ?? 180);
export const ATTEST_SECONDS = Number(process.env['HEXR_BENCH_ATTEST_SECONDS'] ?? 5);

export interface BenchNode {
  kubelet: string;
  daemon: DaemonProcess;
  host: BuiltHost;
  pods: TestPod[];
  /** Marker-less processes for the marker → mapped scenarios: [pod, hostPid, cpid]. */
  spare: [TestPod, number, number][];
  idleRss: number;
}

/** A shell script that starts `plain` sleepers and `roles` marker-writing role processes (roles named from `first`). */
export function populateScript(plain: number, roles: number, first: number): string {
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

export async function writeMarker(dir: string, name: string, fields: Record<string, unknown>): Promise<void> {
  const tmp = path.join(dir, `.${name}.tmp`);
  await fs.promises.writeFile(tmp, JSON.stringify(fields));
  await fs.promises.rename(tmp, path.join(dir, name));
}

/** `n` marker-less sleepers in `pod`: [hostPid, cpid][]. */
export async function sleepersIn(pod: TestPod, n: number): Promise<[number, number][]> {
  const sh = await pod.exec(`i=0; while [ $i -lt ${n} ]; do sleep 100000 & i=$((i+1)); done; wait`);
  const kids = await eventually(() => {
    const k = childrenOf(sh.hostPid);
    return k.length === n ? k : undefined;
  }, 30_000, 'sleepers');
  return kids.map(k => [k, nspidOf(k).at(-1)!]);
}

export async function populate(extraDaemonArgs: string[] = []): Promise<BenchNode & { setupS: number }> {
  const host = await buildHost();
  const kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-bench-'));
  fs.mkdirSync(path.join(kubelet, 'pods'));
  const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--log-level', 'info', '--metrics-addr', '127.0.0.1:0', ...extraDaemonArgs] });
  await daemon.start();
  await new Promise(r => setTimeout(r, 1000));
  const idleRss = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${daemon.pid!}/status`, 'utf8'))?.[1]) / 1024;
  const t0 = performance.now();
  const shapes = ['v1-cgroupfs', 'v2-systemd-containerd', 'v2-systemd-crio'] as const;
  const pods: TestPod[] = [];
  for (let i = 0; i < PODS; i++) {
    const pod = await TestPod.create(kubelet, shapes[i % 3]!);
    pods.push(pod);
    await pod.exec(populateScript(PLAIN_PER_POD, ROLES_PER_POD, 0));
  }
  // Spare, marker-less processes in the first 11 pods (110 each): 100 single + 1,000 burst markers.
  const spare: [TestPod, number, number][] = [];
  for (const pod of pods.slice(0, 11)) for (const [h, c] of await sleepersIn(pod, 110)) spare.push([pod, h, c]);
  const want = PODS * ROLES_PER_POD;
  await eventually(async () => (await daemon.get<{ mapped: number }>('/debug/status')).mapped >= want, 120_000, `${want} mappings`);
  return { kubelet, daemon, host, pods, spare, idleRss, setupS: (performance.now() - t0) / 1000 };
}

export async function teardown(n: Partial<BenchNode>): Promise<void> {
  await n.daemon?.cleanup();
  for (const p of n.pods ?? []) await p.destroy();
  n.host?.cleanup();
  if (n.kubelet) fs.rmSync(n.kubelet, { recursive: true, force: true });
}

/** Observes the daemon's own WatchMap stream: when each host PID was first mapped (no polling). */
export function watchArrivals(daemon: DaemonProcess): { arrived: Map<number, number>; waitFor(pid: number): Promise<void>; close(): void } {
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
  return {
    arrived,
    waitFor: pid => (arrived.has(pid) ? Promise.resolve() : new Promise<void>(resolve => waiters.set(pid, resolve))),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

/**
 * From the daemon's /metrics, in one read: the Attest calls that reached it, and those of
 * them that waited for a marker possibly in flight (NaN: metrics are off).
 */
export async function daemonAttestCounts(daemon: DaemonProcess): Promise<{ calls: number; waits: number }> {
  if (daemon.metricsAddr === undefined) return { calls: NaN, waits: NaN };
  const text = await daemon.metrics();
  return { calls: attestCallsTotal(text), waits: metricValue(text, 'hexr_attest_waits_total') };
}
