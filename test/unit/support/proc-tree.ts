// Builds fixture trees that mirror /proc under a temporary `root`, for the
// createProcfs({ root }) seam. Nothing here touches a real system path.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Procfs } from '../../../src/daemon/procfs.js';

export interface FakeProcess {
  pid: number;
  /** NSpid values, outermost first; null writes a status without an NSpid line. */
  nspid?: number[] | null;
  /** Field 22 of stat. */
  startTime?: number;
  comm?: string;
  /** Contents of /proc/PID/cgroup. */
  cgroup?: string;
  /** Inode of the pid namespace, written as the dangling symlink "pid:[N]". */
  pidNs?: number;
  /** Raw status text, overriding `nspid`. */
  status?: string;
}

export function statusFor(pid: number, nspid: number[] | null, comm = 'python3'): string {
  const inner = nspid?.at(-1) ?? pid;
  return [
    `Name:\t${comm}`,
    'State:\tS (sleeping)',
    `Tgid:\t${pid}`,
    `Pid:\t${pid}`,
    'PPid:\t1',
    'Uid:\t0\t0\t0\t0',
    `NStgid:\t${(nspid ?? [pid]).join('\t')}`,
    ...(nspid === null ? [] : [`NSpid:\t${nspid.join('\t')}`]),
    `NSpgid:\t${inner}`,
    'Threads:\t1',
    '',
  ].join('\n');
}

export function statFor(pid: number, comm: string, startTime: number): string {
  const f: (string | number)[] = [pid, `(${comm})`, 'S', 1, pid, pid, 0, -1, 4194560, 100, 0, 0, 0, 3, 1, 0, 0, 20, 0, 1, 0, startTime];
  while (f.length < 52) f.push(0);
  return f.join(' ') + '\n';
}

export class ProcTree {
  readonly root: string;
  readonly procDir: string;

  constructor(btime: number | null = 1_700_000_000) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-proc-'));
    this.procDir = path.join(this.root, 'proc');
    fs.mkdirSync(this.procDir);
    // Non-PID entries a real /proc has next to the PID directories.
    fs.mkdirSync(path.join(this.procDir, 'sys'));
    fs.writeFileSync(path.join(this.procDir, 'uptime'), '100.00 200.00\n');
    fs.symlinkSync('1', path.join(this.procDir, 'self'));
    if (btime !== null) fs.writeFileSync(path.join(this.procDir, 'stat'), `cpu  1 2 3 4\nintr 5\nctxt 6\nbtime ${btime}\nprocesses 7\n`);
    else fs.writeFileSync(path.join(this.procDir, 'stat'), 'cpu  1 2 3 4\n');
  }

  dir(pid: number): string {
    return path.join(this.procDir, String(pid));
  }

  /** Creates (or replaces) /proc/PID with status, stat, cgroup, ns/pid and root/. */
  add(p: FakeProcess): this {
    const d = this.dir(p.pid);
    fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(path.join(d, 'ns'), { recursive: true });
    fs.mkdirSync(path.join(d, 'root'));
    const nspid = p.nspid === undefined ? [p.pid] : p.nspid;
    fs.writeFileSync(path.join(d, 'status'), p.status ?? statusFor(p.pid, nspid, p.comm));
    fs.writeFileSync(path.join(d, 'stat'), statFor(p.pid, p.comm ?? 'python3', p.startTime ?? 1000 + p.pid));
    fs.writeFileSync(path.join(d, 'cgroup'), p.cgroup ?? '0::/user.slice\n');
    fs.symlinkSync(`pid:[${p.pidNs ?? 4026531836}]`, path.join(d, 'ns', 'pid'));
    return this;
  }

  remove(pid: number): this {
    fs.rmSync(this.dir(pid), { recursive: true, force: true });
    return this;
  }

  setStartTime(pid: number, startTime: number, comm = 'python3'): void {
    fs.writeFileSync(path.join(this.dir(pid), 'stat'), statFor(pid, comm, startTime));
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

export interface ReadCounts {
  listPids: number;
  status: Map<number, number>;
  stat: Map<number, number>;
  cgroup: Map<number, number>;
}

/** Wraps a Procfs and counts every read, per PID. */
export function countingProcfs(inner: Procfs): { procfs: Procfs; counts: ReadCounts; statusReads(): number } {
  const counts: ReadCounts = { listPids: 0, status: new Map(), stat: new Map(), cgroup: new Map() };
  const bump = (m: Map<number, number>, pid: number): void => {
    m.set(pid, (m.get(pid) ?? 0) + 1);
  };
  const procfs: Procfs = {
    procDir: inner.procDir,
    listPids: () => {
      counts.listPids++;
      return inner.listPids();
    },
    readNSpid: pid => {
      bump(counts.status, pid);
      return inner.readNSpid(pid);
    },
    readStartTime: pid => {
      bump(counts.stat, pid);
      return inner.readStartTime(pid);
    },
    readPidNs: pid => inner.readPidNs(pid),
    readCgroup: pid => {
      bump(counts.cgroup, pid);
      return inner.readCgroup(pid);
    },
    bootTimeNs: () => inner.bootTimeNs(),
    recalibrate: () => inner.recalibrate(),
    bootId: () => inner.bootId(),
    rootOf: pid => inner.rootOf(pid),
  };
  return { procfs, counts, statusReads: () => [...counts.status.values()].reduce((a, b) => a + b, 0) };
}

/** Open file descriptors of this process (to check that nothing leaks). */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
