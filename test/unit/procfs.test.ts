import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLK_TCK, createProcfs } from '../../src/daemon/procfs.js';
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

  it('reads boot time from btime in ms and reads it only once', () => {
    const pf = createProcfs({ root: tree.root });
    expect(pf.bootTimeMs()).toBe(1_700_000_000_000);
    fs.writeFileSync(path.join(tree.procDir, 'stat'), 'btime 5\n');
    expect(pf.bootTimeMs()).toBe(1_700_000_000_000);
  });

  it('throws a clear error when /proc/stat has no btime', () => {
    const t = new ProcTree(null);
    try {
      expect(() => createProcfs({ root: t.root }).bootTimeMs()).toThrow(/cannot read btime/);
    } finally {
      t.cleanup();
    }
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
    const startMs = pf.bootTimeMs() + (pf.readStartTime(process.pid)! * 1000) / CLK_TCK;
    expect(startMs).toBeLessThanOrEqual(Date.now() + 1000);
    expect(startMs).toBeGreaterThan(Date.now() - 24 * 3600 * 1000 * 365);
  });
});
