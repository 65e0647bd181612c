// Workload processes inside test pods that fetch X.509-SVIDs from the real
// agent through its Workload API socket, bind-mounted into the pod the way
// the SPIFFE CSI driver mounts it (here at /run/spire/sockets, SPIRE's
// Kubernetes quickstart path, on a tmpfs private to the pod: nothing is
// created on the host's root filesystem).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DaemonProcess, PidmapEntry } from '../../helpers/daemon.js';
import { eventually } from '../../helpers/env.js';
import { CONTAINER_CONTEXT_DIR, childrenOf, markerJson, nspidOf, shq, type PodProcess, type TestPod } from '../../helpers/pod.js';
import type { SpireBins } from './bins.js';
import { spiffeIdOf } from './svid.js';

const run = promisify(execFile);

export const POD_SOCKET_DIR = '/run/spire/sockets';
export const POD_SOCKET = `${POD_SOCKET_DIR}/agent.sock`;

/**
 * Bind-mounts agents' socket directories into the pod (as the CSI driver
 * would): by default the one agent at POD_SOCKET_DIR; several as [host dir, pod dir] pairs.
 */
export async function mountAgentSocket(pod: TestPod, agentSocketDir: string, more: [string, string][] = []): Promise<void> {
  const mounts = [[agentSocketDir, POD_SOCKET_DIR], ...more].map(([host, inPod]) => `mkdir -p ${shq(inPod!)} && mount --bind ${shq(host!)} ${shq(inPod!)}`);
  const script = ['mount -t tmpfs -o mode=0755 pod-run /run', ...mounts].join(' && ');
  await run('nsenter', ['-t', String(pod.pid1), '-m', '--', 'sh', '-c', script]);
}

/** Shell that writes a role marker for this shell's own PID, the way the SDK does (temp file + rename). */
export function markerScript(role: string, agent = 'content-crew'): string {
  const json = markerJson({ agent_name: agent, tenant: 'acme', process_role: role, framework: 'crewai' }).slice(0, -1);
  const file = `${agent}-${role}.json`;
  const tmp = `${CONTAINER_CONTEXT_DIR}/.${file}.tmp`;
  return `printf '%s,"container_pid":%s}' ${shq(json)} $$ > ${tmp} && mv ${tmp} ${CONTAINER_CONTEXT_DIR}/${file}`;
}

export interface FetchResult {
  /** Exit status of `spire-agent api fetch x509`. */
  code: number | null;
  /** SPIFFE ID read from the URI SAN of the certificate it wrote, if any. */
  spiffeId: string | undefined;
  /** Every svid.N.pem it wrote. */
  files: string[];
  stderr: string;
  hostPid: number;
  cpid: number;
  /** The daemon's mapping of the process, when the fetch waited for one. */
  mapped: PidmapEntry | undefined;
}

export interface FetchOptions {
  /** Write a marker for this role first (the process is the role process). */
  role?: string;
  /** Wait for the daemon to map the process before fetching (default: when role is set). */
  waitMapped?: boolean;
  /** Run the workload as a child forked right after setting the pod's ns_last_pid, so that it gets this container PID. */
  reuseCpid?: number;
}

/**
 * Runs `spire-agent api fetch x509 -socketPath ... -write DIR` AS the workload
 * process in the pod: the shell optionally writes its marker, waits for a go
 * signal (so that the daemon can map it first), then execs the real SPIRE CLI,
 * which keeps its PID: the PID the agent attests is the PID the marker names.
 */
export async function fetchAsProcess(pod: TestPod, bins: SpireBins, daemon: DaemonProcess, outDir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  fs.mkdirSync(outDir, { recursive: true });
  const gate = join(outDir, 'go');
  const fetch = `exec ${shq(bins.agent)} api fetch x509 -socketPath ${POD_SOCKET} -write ${shq(outDir)} -timeout 10s > ${shq(join(outDir, 'stdout'))} 2> ${shq(join(outDir, 'stderr'))}`;
  const inner = [...(opts.role ? [markerScript(opts.role)] : []), `while [ ! -e ${shq(gate)} ]; do sleep 0.02; done`, fetch].join(' && ');
  const p =
    opts.reuseCpid === undefined
      ? await pod.exec(inner)
      : await pod.exec(`echo ${opts.reuseCpid - 1} > /proc/sys/kernel/ns_last_pid && { sh -c ${shq(inner)} & wait $!; }`);
  const hostPid = opts.reuseCpid === undefined ? p.hostPid : await eventually(() => childrenOf(p.hostPid)[0], 10_000, 'workload process');
  const ns = nspidOf(hostPid);
  let mapped: PidmapEntry | undefined;
  try {
    if (opts.waitMapped ?? opts.role !== undefined) {
      mapped = await eventually(async () => (await daemon.pidmap()).find(e => e.host_pid === hostPid), 15_000, `host PID ${hostPid} mapped`);
    }
  } finally {
    fs.writeFileSync(gate, '');
  }
  const code = await exitOf(p);
  const files = fs.readdirSync(outDir).filter(f => /^svid\.\d+\.pem$/.test(f));
  const pem = files.includes('svid.0.pem') ? fs.readFileSync(join(outDir, 'svid.0.pem'), 'utf8') : undefined;
  return {
    code,
    spiffeId: pem === undefined ? undefined : spiffeIdOf(pem),
    files,
    stderr: fs.readFileSync(join(outDir, 'stderr'), 'utf8'),
    hostPid,
    cpid: ns[ns.length - 1]!,
    mapped,
  };
}

/** Exit code of a pod process (nsenter passes its child's status on). */
export function exitOf(p: PodProcess, timeoutMs = 30_000): Promise<number | null> {
  const h = p.handle;
  if (h.exitCode !== null || h.signalCode !== null) return Promise.resolve(h.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pod process ${p.hostPid} still running after ${timeoutMs} ms`)), timeoutMs);
    h.once('exit', code => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** A long-lived role process (test/go hexr-workload serve) that fetches whenever asked. */
export interface ServingRole {
  proc: PodProcess;
  control: string;
  /** One FetchX509SVID from inside the pod, as this process. */
  fetch(): Promise<ServedFetch>;
}

export interface ServedFetch {
  ok: boolean;
  code?: string;
  message?: string;
  ms: number;
  svids?: { spiffe_id: string; cert_pem: string; hint?: string }[];
  /** SPIFFE IDs read from the certificates' URI SANs. */
  ids: string[];
}

export async function startServingRole(pod: TestPod, bins: SpireBins, role: string, control: string): Promise<ServingRole> {
  const args = ['serve', '-socket', POD_SOCKET, '-control', control, '-marker-dir', CONTAINER_CONTEXT_DIR, '-role', role].map(shq).join(' ');
  const proc = await pod.exec(`exec ${shq(bins.workload)} ${args}`);
  await eventually(() => fs.existsSync(control), 10_000, `${role} control socket`);
  return {
    proc,
    control,
    fetch: async () => {
      const line = await new Promise<string>((resolve, reject) => {
        const c = net.connect(control);
        let buf = '';
        c.on('connect', () => c.write('fetch\n'));
        c.on('data', d => (buf += d.toString()));
        c.on('end', () => resolve(buf));
        c.on('error', reject);
      });
      const r = JSON.parse(line) as Omit<ServedFetch, 'ids'>;
      return { ...r, ids: (r.svids ?? []).map(s => spiffeIdOf(s.cert_pem)) };
    },
  };
}
