// Shared pieces of the hardening suite: a kubelet root, an oracle that
// checks every answer against ground truth, inotify open-counting, RSS.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DaemonProcess, PidmapEntry } from '../helpers/daemon.js';

export function makeKubeletRoot(): string {
  const k = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-hard-kubelet-'));
  fs.mkdirSync(path.join(k, 'pods'));
  return k;
}

/** The role a selector list names, or undefined (no process-role selector). */
export function roleOf(values: readonly string[]): string | undefined {
  const roles = values.filter(v => v.startsWith('process-role:'));
  if (roles.length > 1) throw new Error(`more than one role in one answer: ${values.join(', ')}`);
  return roles[0]?.slice('process-role:'.length);
}

/**
 * Checks the whole debug map against what each host PID really wrote:
 * `truth` maps host PID → role; any entry for a PID outside it, or with
 * another role, is a wrong answer.
 */
export function wrongEntries(entries: readonly PidmapEntry[], truth: ReadonlyMap<number, string>): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const want = truth.get(e.host_pid);
    if (want !== e.process_role) out.push(`host PID ${e.host_pid} mapped to ${e.process_role} via ${e.marker_path}; truth: ${want ?? 'no role'}`);
  }
  return out;
}

export async function assertMapTruthful(d: DaemonProcess, truth: ReadonlyMap<number, string>): Promise<void> {
  const wrong = wrongEntries(await d.pidmap(), truth);
  if (wrong.length > 0) throw new Error(`wrong mappings:\n${wrong.join('\n')}`);
}

const INOTIFY_PY = `
import ctypes, os, sys, select, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
wd = libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x20)  # IN_OPEN
if wd < 0:
    print("error", ctypes.get_errno(), flush=True); sys.exit(1)
print("ready", flush=True)
n = 0
while True:
    r, _, _ = select.select([fd, sys.stdin], [], [], 0.1)
    if fd in r:
        buf = os.read(fd, 4096)
        i = 0
        while i + 16 <= len(buf):
            _wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
            if mask & 0x20:  # not IN_IGNORED, which comes when the inode is deleted
                n += 1
            i += 16 + ln
    if sys.stdin in r:
        sys.stdin.read()
        break
print("opens", n, flush=True)
`;

/**
 * Counts open(2)s of one inode (inotify IN_OPEN, which fires for device
 * nodes and FIFOs too, and not for lstat/stat). stop() returns the count.
 */
export async function watchOpens(file: string): Promise<{ stop(): Promise<number>; child: ChildProcess }> {
  const child = spawn('python3', ['-c', INOTIFY_PY, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>(r => child.once('exit', () => r()));
  const t0 = Date.now();
  while (!out.includes('ready')) {
    if (out.includes('error') || child.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`inotify watcher failed: ${out}`);
    await new Promise(r => setTimeout(r, 20));
  }
  return {
    child,
    async stop() {
      child.stdin.end();
      await exited;
      const m = /opens (\d+)/.exec(out);
      if (!m) throw new Error(`inotify watcher gave no count: ${out}`);
      return Number(m[1]);
    },
  };
}

/** VmRSS of a process in MiB, or undefined when it is gone. */
export function rssMiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

/** Waits for `n` more full resyncs of the daemon (each one has re-read every marker and /proc). */
export async function waitResyncs(d: DaemonProcess, n = 1, ms = 15_000): Promise<void> {
  const count = async (): Promise<number> => (await d.get<{ resync_count: number }>('/debug/status')).resync_count;
  const target = (await count()) + n;
  const end = Date.now() + ms;
  while ((await count()) < target) {
    if (Date.now() > end) throw new Error(`no ${n} resync(s) within ${ms} ms`);
    await sleep(50);
  }
}
