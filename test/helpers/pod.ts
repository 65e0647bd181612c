// Real "pods" on the real kernel: a kubepods-shaped cgroup (v1 or v2), a
// kubelet-style emptyDir directory, and processes in a new PID + mount
// namespace with that directory bind-mounted at /tmp/hexr-context.
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eventually } from './env.js';

export const CONTAINER_CONTEXT_DIR = '/tmp/hexr-context';

export type CgroupShape = 'v1-cgroupfs' | 'v2-systemd-containerd' | 'v2-systemd-crio';

export interface PodProcess {
  /** PID in the host (our) PID namespace. */
  readonly hostPid: number;
  /** PID inside the pod's PID namespace. */
  readonly cpid: number;
  readonly handle: ChildProcess;
  /** Its start time (clock ticks after boot): tells it from a later process with its PID. */
  readonly ticks: number | undefined;
}

/** Child PIDs of a process (its main thread's children). */
export function childrenOf(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** NSpid of a process: its PID in every namespace, outermost first. */
export function nspidOf(hostPid: number): number[] {
  const line = fs.readFileSync(`/proc/${hostPid}/status`, 'utf8').split('\n').find(l => l.startsWith('NSpid:'));
  return (line ?? '').slice(6).trim().split(/\s+/).map(Number);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process has exited: gone, or a zombie its new parent has not reaped yet. */
export function exited(pid: number, ticks?: number): boolean {
  if (!alive(pid)) return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (ticks !== undefined && Number(fields[19]) !== ticks) return true; // its PID reused since
    return fields[0] === 'Z';
  } catch {
    return true;
  }
}

export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function markerJson(fields: Record<string, unknown>): string {
  return JSON.stringify(fields);
}

export class TestPod {
  readonly uid: string;
  readonly containerId: string;
  readonly emptyDir: string;
  readonly cgroupDir: string;
  private readonly cgroupDirsToRemove: string[] = [];
  private init: ChildProcess | undefined;
  pid1 = 0;
  private readonly procs: PodProcess[] = [];

  constructor(
    readonly kubeletRoot: string,
    readonly shape: CgroupShape,
    readonly volume = 'hexr-context',
  ) {
    this.uid = crypto.randomUUID();
    this.containerId = crypto.randomBytes(32).toString('hex');
    this.emptyDir = path.join(kubeletRoot, 'pods', this.uid, 'volumes', 'kubernetes.io~empty-dir', volume);
    const u = this.uid.replace(/-/g, '_');
    const tag = crypto.randomBytes(3).toString('hex');
    if (shape === 'v1-cgroupfs') {
      const base = `/sys/fs/cgroup/pids/kubepods-test-${tag}`;
      this.cgroupDirsToRemove.push(base, `${base}/besteffort`, `${base}/besteffort/pod${this.uid}`);
      this.cgroupDir = `${base}/besteffort/pod${this.uid}/${this.containerId}`;
    } else {
      const base = `/sys/fs/cgroup/unified/kubepods-test${tag}.slice`;
      const podSlice = `${base}/kubepods-besteffort-pod${u}.slice`;
      const scope = shape === 'v2-systemd-crio' ? `crio-${this.containerId}.scope` : `cri-containerd-${this.containerId}.scope`;
      this.cgroupDirsToRemove.push(base, podSlice);
      this.cgroupDir = `${podSlice}/${scope}`;
    }
    this.cgroupDirsToRemove.push(this.cgroupDir);
  }

  static async create(kubeletRoot: string, shape: CgroupShape): Promise<TestPod> {
    const pod = new TestPod(kubeletRoot, shape);
    await pod.start();
    return pod;
  }

  private get procsFile(): string {
    return `${this.cgroupDir}/cgroup.procs`;
  }

  private async start(): Promise<void> {
    fs.mkdirSync(this.emptyDir, { recursive: true, mode: 0o777 });
    fs.chmodSync(this.emptyDir, 0o777);
    fs.mkdirSync(CONTAINER_CONTEXT_DIR, { recursive: true });
    fs.mkdirSync(this.cgroupDir, { recursive: true });
    // sh puts itself in the pod cgroup, then becomes unshare, whose child is PID 1 of the pod.
    const inner = `mount --bind ${shq(this.emptyDir)} ${CONTAINER_CONTEXT_DIR} && exec sleep 100000`;
    this.init = spawn(
      'sh',
      ['-c', `echo $$ > ${shq(this.procsFile)} && exec unshare --pid --mount --fork --mount-proc --propagation private sh -c ${shq(inner)}`],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const unsharePid = this.init.pid as number;
    this.pid1 = await eventually(() => childrenOf(unsharePid)[0], 10_000, 'pod PID 1');
    // Wait until the bind mount is in place (PID 1 has exec'd sleep).
    await eventually(() => fs.readFileSync(`/proc/${this.pid1}/comm`, 'utf8').trim() === 'sleep', 10_000, 'pod init');
  }

  /**
   * Runs `script` (sh) inside the pod: new process in the pod's PID and mount
   * namespaces and cgroup. The script should end by exec'ing a long-lived
   * command so that its PID stays the same.
   */
  async exec(script: string): Promise<PodProcess> {
    const handle = spawn('nsenter', ['-t', String(this.pid1), '-p', '-m', '--', 'sh', '-c', `echo $$ > ${shq(this.procsFile)} && ${script}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const nsenterPid = handle.pid as number;
    const hostPid = await eventually(() => childrenOf(nsenterPid)[0], 10_000, 'pod process');
    const ns = nspidOf(hostPid);
    const proc = { hostPid, cpid: ns[ns.length - 1] as number, handle, ticks: startTicks(hostPid) };
    this.procs.push(proc);
    return proc;
  }

  /** Starts a process that writes its own marker (temp file + rename, like the SDK) and sleeps. */
  async startRole(role: string, opts: { agent?: string; tenant?: string; file?: string; extra?: Record<string, unknown>; claimCpid?: number } = {}): Promise<PodProcess> {
    const agent = opts.agent ?? 'content-crew';
    const file = opts.file ?? `${agent}-${role}.json`;
    const fields = { agent_name: agent, tenant: opts.tenant ?? 'acme', process_role: role, framework: 'crewai', ...opts.extra };
    const json = markerJson(fields).slice(0, -1); // container_pid appended by the shell
    const cpidExpr = opts.claimCpid !== undefined ? String(opts.claimCpid) : '$$';
    const tmp = `${CONTAINER_CONTEXT_DIR}/.${file}.tmp`;
    const script = `printf '%s,"container_pid":%s}' ${shq(json)} ${cpidExpr} > ${tmp} && mv ${tmp} ${CONTAINER_CONTEXT_DIR}/${file} && exec sleep 100000`;
    return this.exec(script);
  }

  /** The marker file as the daemon sees it. */
  hostPath(file: string): string {
    return path.join(this.emptyDir, file);
  }

  async kill(p: PodProcess): Promise<void> {
    try {
      process.kill(p.hostPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await eventually(() => exited(p.hostPid, p.ticks), 30_000, 'process exit');
    await eventually(() => p.handle.exitCode !== null || p.handle.signalCode !== null, 30_000, 'nsenter exit');
  }

  async destroy(): Promise<void> {
    // unshare first, PID 1 second. The other way round, unshare (util-linux
    // 2.38) sees its child killed by SIGKILL, tries to re-raise it on itself
    // with signal(SIGKILL, SIG_DFL), which fails with EINVAL, and prints a
    // misleading "unshare: sigprocmask unblock failed: Invalid argument".
    const init = this.init;
    if (init && init.exitCode === null && init.signalCode === null) {
      const exited = new Promise<void>(resolve => init.once('exit', () => resolve()));
      init.kill('SIGKILL');
      await exited;
    }
    if (this.pid1 > 0 && alive(this.pid1)) {
      try {
        process.kill(this.pid1, 'SIGKILL'); // PID 1 gone: the kernel kills the whole namespace
      } catch {
        /* gone */
      }
    }
    for (const p of this.procs) {
      if (p.handle.exitCode === null && p.handle.signalCode === null) await new Promise<void>(r => p.handle.once('exit', () => r()));
    }
    for (const d of [...this.cgroupDirsToRemove].reverse()) {
      for (let i = 0; i < 50; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code === 'EBUSY' || code === 'ENOTEMPTY') {
            if (code === 'ENOTEMPTY' && i > 0) break; // a shared parent still in use by another pod
            await new Promise(r => setTimeout(r, 50));
            continue;
          }
          throw err;
        }
      }
    }
    fs.rmSync(path.join(this.kubeletRoot, 'pods', this.uid), { recursive: true, force: true });
  }
}

/** Makes the next process forked in the PID namespace of `/proc` get PID `pid` (best effort; retried by callers). */
export function setNextPid(pid: number, nsLastPidFile = '/proc/sys/kernel/ns_last_pid'): void {
  fs.writeFileSync(nsLastPidFile, String(pid - 1));
}

/** Start time of a live process in clock ticks since boot (field 22 of /proc/PID/stat), or undefined once it is gone. */
export function startTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

/**
 * Forks `sleep` on the host until it gets host PID `pid`. Other processes race
 * us for it (other test files run in parallel, and a fork inside a pod takes a
 * host PID too); while one holds it we wait for it to go, up to `timeoutMs`.
 */
export async function spawnWithPid(pid: number, timeoutMs = 20_000): Promise<ChildProcess> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // A dead process's PID is free only once it has been reaped (a zombie still holds it).
    if (fs.existsSync(`/proc/${pid}`)) {
      await new Promise(r => setTimeout(r, 20));
      continue;
    }
    setNextPid(pid);
    const c = spawn('sleep', ['100000'], { stdio: 'ignore' });
    if (c.pid === pid) return c;
    c.kill('SIGKILL');
    await new Promise(r => c.once('exit', r));
  }
  let holder = 'nobody';
  try {
    holder = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    /* gone */
  }
  throw new Error(`could not get PID ${pid} in ${timeoutMs} ms (now held by: ${holder})`);
}

