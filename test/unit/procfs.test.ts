import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { ClockSources } from '../../src/daemon/boot-clock.js';
import { CLK_TCK, TICK_NS, createProcfs } from '../../src/daemon/procfs.js';
import { readSmall } from '../../src/proc-file.js';
import { ProcTree, openFdCount } from './support/proc-tree.js';

const UID = '1f2e3d4c-5b6a-4789-9abc-def012345678';
const CID = 'e'.repeat(64);

describe('createProcfs over a fixture tree', () => {
  let tree: ProcTree;
  beforeEach(() => {
    tree = new ProcTree();
  });
  afterEach(() => {
    tree.cleanup();
  });

  it('reads ${root}/proc, not the real /proc', () => {
    const pf = createProcfs({ root: tree.root });
    expect(pf.procDir).toBe(path.join(tree.root, 'proc'));
    expect(pf.listPids()).toEqual([]);
  });

  it('lists only numeric entries as PIDs', () => {
    tree.add({ pid: 1 }).add({ pid: 4242 }).add({ pid: 77 });
    fs.mkdirSync(path.join(tree.procDir, 'acpi'));
    fs.mkdirSync(path.join(tree.procDir, '12abc'));
    expect(createProcfs({ root: tree.root }).listPids().sort((a, b) => a - b)).toEqual([1, 77, 4242]);
  });

  it('reads NSpid, start time, pid namespace and cgroup of a containerized process', () => {
    tree.add({
      pid: 4242,
      nspid: [4242, 7],
      startTime: 987654,
      comm: 'a) b) c',
      pidNs: 4026532201,
      cgroup: `0::/kubepods/besteffort/pod${UID}/${CID}\n`,
    });
    const pf = createProcfs({ root: tree.root });
    expect(pf.readNSpid(4242)).toEqual([4242, 7]);
    expect(pf.readStartTime(4242)).toBe(987654);
    expect(pf.readPidNs(4242)).toBe(4026532201);
    expect(pf.readCgroup(4242)).toEqual({ podUid: UID, containerId: CID });
    expect(pf.rootOf(4242)).toBe(path.join(tree.root, 'proc', '4242', 'root'));
  });

  // A node with many CPUs and interrupts has a /proc/stat past readSmall's 64 KB,
  // with btime and "processes" at its end: both were read from a truncated copy.
  it('reads /proc/stat whole: the boot time (without /proc/uptime) and the task counter of a large node', () => {
    const intr = `intr ${Array.from({ length: 40_000 }, (_, i) => i % 10).join(' ')}\n`;
    fs.writeFileSync(path.join(tree.procDir, 'stat'), `cpu  1 2 3 4\n${intr}ctxt 5\nbtime 1700000000\nprocesses 123456\n`);
    expect(fs.statSync(path.join(tree.procDir, 'stat')).size).toBeGreaterThan(64 * 1024);
    fs.rmSync(path.join(tree.procDir, 'uptime')); // the boot time then comes from btime
    const pf = createProcfs({ root: tree.root });
    expect(pf.readForks?.()).toBe(123456);
    expect(pf.bootTimeNs()).toBe(1_700_000_000n * 1_000_000_000n);
  });

  it('returns undefined from every reader for a PID that does not exist', () => {
    const pf = createProcfs({ root: tree.root });
    expect(pf.readNSpid(999)).toBeUndefined();
    expect(pf.readStartTime(999)).toBeUndefined();
    expect(pf.readPidNs(999)).toBeUndefined();
    expect(pf.readCgroup(999)).toBeUndefined();
  });

  it('returns undefined for a PID that vanished after it was listed', () => {
    tree.add({ pid: 5 });
    const pf = createProcfs({ root: tree.root });
    expect(pf.listPids()).toEqual([5]);
    tree.remove(5);
    expect(pf.readNSpid(5)).toBeUndefined();
    expect(pf.readStartTime(5)).toBeUndefined();
  });

  it('returns undefined for a status without an NSpid line', () => {
    tree.add({ pid: 5, nspid: null });
    expect(createProcfs({ root: tree.root }).readNSpid(5)).toBeUndefined();
  });

  it('returns an empty CgroupInfo for a process outside any pod', () => {
    tree.add({ pid: 5, cgroup: '0::/system.slice/sshd.service\n' });
    expect(createProcfs({ root: tree.root }).readCgroup(5)).toEqual({});
  });

  it('returns undefined for a pid namespace link of another kind', () => {
    tree.add({ pid: 5 });
    const link = path.join(tree.dir(5), 'ns', 'pid');
    fs.unlinkSync(link);
    fs.symlinkSync('mnt:[4026531840]', link);
    expect(createProcfs({ root: tree.root }).readPidNs(5)).toBeUndefined();
  });

  it('calibrates the boot time once, then caches it until recalibrated', () => {
    const clock = fakeClock(1_700_000_000_900_000_000n);
    const pf = createProcfs({ root: tree.root, clock });
    const first = pf.bootTimeNs();
    expect(Number(first - 1_700_000_000_900_000_000n) / 1e6).toBeCloseTo(0, 1);
    clock.bootNs += 1_000_000_000n; // the wall clock was stepped back by a second
    expect(pf.bootTimeNs()).toBe(first);
    pf.recalibrate();
    expect(Number(pf.bootTimeNs() - first) / 1e6).toBeCloseTo(1000, 1);
  });

  it('falls back to btime (whole seconds) without /proc/uptime, and throws a clear error without either', () => {
    const t = new ProcTree(1_700_000_000);
    try {
      fs.rmSync(path.join(t.procDir, 'uptime'));
      expect(createProcfs({ root: t.root }).bootTimeNs()).toBe(1_700_000_000_000_000_000n);
      fs.writeFileSync(path.join(t.procDir, 'stat'), 'cpu 1\n');
      expect(() => createProcfs({ root: t.root }).bootTimeNs()).toThrow(/cannot read the boot time/);
    } finally {
      t.cleanup();
    }
  });

  it('reads the boot id, or names the boot by btime when it is unreadable', () => {
    expect(createProcfs({ root: tree.root }).bootId()).toBe('btime:1700000000');
    fs.mkdirSync(path.join(tree.procDir, 'sys', 'kernel', 'random'), { recursive: true });
    fs.writeFileSync(path.join(tree.procDir, 'sys', 'kernel', 'random', 'boot_id'), 'b1f5\n');
    expect(createProcfs({ root: tree.root }).bootId()).toBe('b1f5');
  });

  it('finds NSpid after 20 KB of status text', () => {
    const big = `${'x'.repeat(20_000)}\nNSpid:\t9\t3\n`;
    tree.add({ pid: 9, status: big });
    expect(createProcfs({ root: tree.root }).readNSpid(9)).toEqual([9, 3]);
  });

  it('does not leak file descriptors, found or not', () => {
    tree.add({ pid: 5 });
    const pf = createProcfs({ root: tree.root });
    const before = openFdCount();
    for (let i = 0; i < 50; i++) {
      pf.readNSpid(5);
      pf.readStartTime(5);
      pf.readCgroup(6);
      pf.readPidNs(6);
    }
    expect(openFdCount()).toBe(before);
  });
});

describe('readSmall', () => {
  it('returns undefined for a missing file and text for an existing one', () => {
    const tree = new ProcTree();
    try {
      expect(readSmall(path.join(tree.procDir, 'nope'))).toBeUndefined();
      expect(readSmall(path.join(tree.procDir, 'uptime'))).toBe('100.00 200.00\n');
    } finally {
      tree.cleanup();
    }
  });

  it('returns undefined when a path component is not a directory (ENOTDIR)', () => {
    const tree = new ProcTree();
    try {
      expect(readSmall(path.join(tree.procDir, 'uptime', 'status'))).toBeUndefined();
    } finally {
      tree.cleanup();
    }
  });
});

describe('createProcfs over the real /proc (read only)', () => {
  const pf = createProcfs();

  it('lists this process', () => {
    expect(pf.listPids()).toContain(process.pid);
  });

  it('reads this process: innermost NSpid is our own PID, a start time, a pid namespace', () => {
    expect(pf.readNSpid(process.pid)?.at(-1)).toBe(process.pid);
    const st = pf.readStartTime(process.pid);
    expect(Number.isSafeInteger(st)).toBe(true);
    expect(pf.readPidNs(process.pid)).toBeGreaterThan(0);
  });

  it('puts this process\'s start after boot and not in the future', () => {
    const startMs = Number(pf.bootTimeNs() / 1_000_000n) + (pf.readStartTime(process.pid)! * 1000) / CLK_TCK;
    expect(startMs).toBeLessThanOrEqual(Date.now() + 1000);
    expect(startMs).toBeGreaterThan(Date.now() - 24 * 3600 * 1000 * 365);
  });

  // Issue 10, item 4: btime has whole seconds, so start times were up to 1 s early.
  it('places a new process\'s start time within one clock tick of when it was really started', () => {
    const wallNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
    const before = wallNs();
    const child = spawnSync('sh', ['-c', 'cat /proc/self/stat'], { encoding: 'utf8' });
    const after = wallNs();
    const ticks = BigInt(child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ')[19] as string);
    const startedNs = pf.bootTimeNs() + ticks * TICK_NS;
    // Ticks round down (10 ms); Date.now() has 1 ms steps.
    expect(Number(startedNs - before) / 1e6).toBeGreaterThanOrEqual(-12);
    expect(Number(after - startedNs) / 1e6).toBeGreaterThanOrEqual(-1);
  });
});

/** A clock where every reading takes 2 µs, booted at `bootNs` on the wall clock. */
function fakeClock(bootNs: bigint): ClockSources & { bootNs: bigint } {
  let mono = 5_000_000_000n;
  const wallAtMono0 = 1_700_000_100_123_456_789n - mono;
  const step = (): bigint => (mono += 2_000n);
  const c = {
    bootNs,
    monoNs: step,
    wallMs: () => Number((step() + wallAtMono0) / 1_000_000n),
    readUptime: () => {
      const up = (step() + wallAtMono0 - c.bootNs) / 10_000_000n;
      return `${up / 100n}.${String(up % 100n).padStart(2, '0')} 1.00\n`;
    },
    readStat: () => 'btime 1700000000\n',
  };
  return c;
}
