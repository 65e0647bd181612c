import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProcTable } from '../../src/daemon/proc-table.js';
import { createProcfs, type Procfs } from '../../src/daemon/procfs.js';
import { ProcTree, countingProcfs } from './support/proc-tree.js';

describe('ProcTable over a fixture /proc', () => {
  let tree: ProcTree;
  let pf: ReturnType<typeof countingProcfs>;
  let table: ProcTable;

  beforeEach(() => {
    tree = new ProcTree();
    tree
      .add({ pid: 1, nspid: [1] }) // host init
      .add({ pid: 1000, nspid: [1000, 1], startTime: 5000 }) // PID 1 of container A
      .add({ pid: 1001, nspid: [1001, 7], startTime: 5001 }) // agent in container A
      .add({ pid: 2000, nspid: [2000, 1], startTime: 6000 }) // PID 1 of container B
      .add({ pid: 2001, nspid: [2001, 7], startTime: 6001 }); // agent in container B
    pf = countingProcfs(createProcfs({ root: tree.root }));
    table = new ProcTable(pf.procfs);
  });
  afterEach(() => {
    tree.cleanup();
  });

  it('reads every PID once on the first refresh', () => {
    expect(table.refresh()).toEqual({ added: 5, removed: 0 });
    expect(table.size).toBe(5);
    expect([...pf.counts.status.entries()].sort(([a], [b]) => a - b)).toEqual([
      [1, 1],
      [1000, 1],
      [1001, 1],
      [2000, 1],
      [2001, 1],
    ]);
  });

  it('does not re-read known PIDs on later refreshes', () => {
    table.refresh();
    expect(table.refresh()).toEqual({ added: 0, removed: 0 });
    expect(table.refresh()).toEqual({ added: 0, removed: 0 });
    expect(pf.statusReads()).toBe(5);
    expect(pf.counts.stat.size).toBe(0); // refresh never needs start times
  });

  it('reads only a new PID', () => {
    table.refresh();
    tree.add({ pid: 3000, nspid: [3000, 42] });
    expect(table.refresh()).toEqual({ added: 1, removed: 0 });
    expect(pf.statusReads()).toBe(6);
    expect(pf.counts.status.get(3000)).toBe(1);
    expect(table.has(3000)).toBe(true);
  });

  it('drops a PID that is gone, without reading anything', () => {
    table.refresh();
    tree.remove(2001);
    expect(table.refresh()).toEqual({ added: 0, removed: 1 });
    expect(table.has(2001)).toBe(false);
    expect(table.size).toBe(4);
    expect(pf.statusReads()).toBe(5);
    expect(table.candidates(7).map(c => c.pid)).toEqual([1001]);
  });

  it('handles additions and removals in the same refresh', () => {
    table.refresh();
    tree.remove(1001).add({ pid: 1002, nspid: [1002, 8] });
    expect(table.refresh()).toEqual({ added: 1, removed: 1 });
    expect(table.has(1001)).toBe(false);
    expect(table.has(1002)).toBe(true);
  });

  it('does not index a PID that vanished between readdir and the status read', () => {
    table.refresh();
    tree.add({ pid: 4000, nspid: [4000, 3] });
    const listing = pf.procfs.listPids();
    tree.remove(4000);
    const racing: Procfs = { ...pf.procfs, listPids: () => listing };
    const t2 = new ProcTable(racing);
    t2.refresh();
    expect(t2.has(4000)).toBe(false);
    expect(t2.candidates(3)).toEqual([]);
  });

  it('finds every process whose innermost PID matches, across containers', () => {
    table.refresh();
    const c = table.candidates(7).sort((a, b) => a.pid - b.pid);
    expect(c).toEqual([
      { pid: 1001, startTime: 5001, nspid: [1001, 7] },
      { pid: 2001, startTime: 6001, nspid: [2001, 7] },
    ]);
  });

  it('finds host PIDs by their own PID when they are in the initial namespace', () => {
    table.refresh();
    expect(table.candidates(1).map(c => c.pid).sort((a, b) => a - b)).toEqual([1, 1000, 2000]);
  });

  it('returns no candidates for an unknown container PID, reading nothing', () => {
    table.refresh();
    expect(table.candidates(12345)).toEqual([]);
    expect(pf.counts.stat.size).toBe(0);
  });

  it('revalidates each candidate by reading its start time and NSpid again', () => {
    table.refresh();
    table.candidates(7);
    expect(pf.counts.stat.get(1001)).toBe(2); // before and after the NSpid read
    expect(pf.counts.status.get(1001)).toBe(2); // once in refresh, once now
    expect(pf.counts.stat.has(1000)).toBe(false); // other container PIDs are not touched
  });

  it('drops a candidate that vanished since the last refresh and unindexes it', () => {
    table.refresh();
    tree.remove(1001);
    expect(table.candidates(7).map(c => c.pid)).toEqual([2001]);
    expect(table.has(1001)).toBe(false);
  });

  it('drops a candidate whose start time changes while it is being read (PID reused mid-read)', () => {
    table.refresh();
    let n = 0;
    const flaky: Procfs = {
      ...pf.procfs,
      readStartTime: pid => {
        const t = pf.procfs.readStartTime(pid);
        return pid === 2001 && t !== undefined ? t + n++ : t;
      },
    };
    const t2 = new ProcTable(flaky);
    t2.refresh();
    expect(t2.candidates(7).map(c => c.pid)).toEqual([1001]);
    expect(t2.has(2001)).toBe(false);
  });

  it('drops a candidate whose process was replaced by one with another container PID, and moves it in the index', () => {
    table.refresh();
    tree.add({ pid: 1001, nspid: [1001, 9], startTime: 9999 }); // PID 1001 reused
    expect(table.candidates(7).map(c => c.pid)).toEqual([2001]);
    expect(table.has(1001)).toBe(true);
    expect(table.candidates(9)).toEqual([{ pid: 1001, startTime: 9999, nspid: [1001, 9] }]);
  });

  it('returns the current start time of a reused PID with the same container PID', () => {
    table.refresh();
    tree.add({ pid: 1001, nspid: [1001, 7], startTime: 7777 });
    expect(table.candidates(7).find(c => c.pid === 1001)?.startTime).toBe(7777);
  });

  it('hides a reused PID from its new container PID until a full resync heals it', () => {
    table.refresh();
    tree.add({ pid: 2001, nspid: [2001, 11], startTime: 8888 }); // reused between refreshes
    table.refresh();
    expect(table.candidates(11)).toEqual([]); // stale index: known PIDs are not re-read
    expect(table.candidates(7).map(c => c.pid)).toEqual([1001]); // never handed out under the old one
    tree.add({ pid: 1001, nspid: [1001, 12], startTime: 8889 });
    expect(table.candidates(12)).toEqual([]);
    return table.fullResync().then(n => {
      expect(n).toBe(5);
      expect(table.candidates(12)).toEqual([{ pid: 1001, startTime: 8889, nspid: [1001, 12] }]);
      expect(table.candidates(7)).toEqual([]);
    });
  });

  it('fullResync re-reads every PID and forgets the ones that are gone', async () => {
    table.refresh();
    tree.remove(1);
    expect(await table.fullResync()).toBe(4);
    expect(table.has(1)).toBe(false);
    expect(pf.counts.status.get(1000)).toBe(2);
  });

  it('revalidate indexes a PID it did not know yet', () => {
    tree.add({ pid: 5000, nspid: [5000, 3], startTime: 1 });
    expect(table.revalidate(5000)).toEqual({ pid: 5000, startTime: 1, nspid: [5000, 3] });
    expect(table.candidates(3).map(c => c.pid)).toEqual([5000]);
  });

  it('revalidate returns undefined for a PID without a readable NSpid', () => {
    tree.add({ pid: 5000, nspid: null });
    expect(table.revalidate(5000)).toBeUndefined();
    expect(table.has(5000)).toBe(false);
  });
});

/** In-memory Procfs: fast enough for property tests and thousands of PIDs. */
function memProcfs(procs: Map<number, { nspid: number[]; start: number }>): Procfs & { statusReads: number } {
  const pf = {
    statusReads: 0,
    procDir: '/nonexistent/proc',
    listPids: () => [...procs.keys()],
    readNSpid(pid: number) {
      pf.statusReads++;
      return procs.get(pid)?.nspid;
    },
    readStartTime: (pid: number) => procs.get(pid)?.start,
    readPidNs: () => undefined,
    readCgroup: () => undefined,
    bootTimeNs: () => 0n,
    recalibrate: () => undefined,
    bootId: () => 'test',
    rootOf: (pid: number) => `/nonexistent/proc/${pid}/root`,
  };
  return pf;
}

describe('ProcTable: properties', () => {
  it('after any sequence of process births and exits, refresh indexes exactly the live PIDs, reading each new PID once', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('spawn' as const), pid: fc.integer({ min: 1, max: 60 }), cpid: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('exit' as const), pid: fc.integer({ min: 1, max: 60 }) }),
      fc.record({ kind: fc.constant('refresh' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), ops => {
        const procs = new Map<number, { nspid: number[]; start: number }>();
        const pf = memProcfs(procs);
        const table = new ProcTable(pf);
        let clock = 0;
        let expectedReads = 0;
        let known = new Set<number>();
        const refresh = (): void => {
          table.refresh();
          for (const pid of procs.keys()) if (!known.has(pid)) expectedReads++;
          known = new Set(procs.keys());
        };
        for (const o of ops) {
          if (o.kind === 'spawn') {
            // A spawn onto a live PID is skipped: reuse needs an exit first.
            if (!procs.has(o.pid)) procs.set(o.pid, { nspid: [o.pid, o.cpid], start: ++clock });
          } else if (o.kind === 'exit') procs.delete(o.pid);
          else refresh();
        }
        refresh();
        expect(table.size).toBe(procs.size);
        for (const pid of procs.keys()) expect(table.has(pid)).toBe(true);
        expect(pf.statusReads).toBe(expectedReads);
        // Candidates only ever name live processes with that container PID.
        for (let cpid = 1; cpid <= 5; cpid++) {
          for (const c of table.candidates(cpid)) {
            expect(procs.get(c.pid)?.nspid.at(-1)).toBe(cpid);
            expect(c.startTime).toBe(procs.get(c.pid)?.start);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('fullResync handles thousands of PIDs, yields to the event loop every few ms, and swaps the new table in whole', async () => {
    const procs = new Map<number, { nspid: number[]; start: number }>();
    for (let pid = 1; pid <= 3000; pid++) procs.set(pid, { nspid: [pid, (pid % 10) + 1], start: pid });
    const mem = memProcfs(procs);
    // Each read costs 10 µs, as a /proc read does on a busy node: 30 ms in all.
    const slow: Procfs = {
      ...mem,
      readNSpid: pid => {
        const until = performance.now() + 0.01;
        while (performance.now() < until);
        return mem.readNSpid(pid);
      },
    };
    const table = new ProcTable(slow);
    table.refreshFull();
    expect(table.candidates(1)).toHaveLength(300);
    let immediates = 0;
    const seen: number[] = [];
    const countImmediates = (): void => {
      immediates++;
      seen.push(table.candidates(1).length); // a batch running meanwhile
      if (immediates < 1000) setImmediate(countImmediates);
    };
    setImmediate(countImmediates);
    const n = await table.fullResync();
    expect(n).toBe(3000);
    expect(immediates).toBeGreaterThan(3); // other callbacks ran while it worked
    expect(new Set(seen)).toEqual(new Set([300])); // never a half-filled table
    expect(table.candidates(1)).toHaveLength(300);
  });

  // Found in review: a listing refresh that waited while a full resync swapped
  // its table in then recorded its own (later) ns_last_pid, and the PIDs it had
  // read into the old table were never probed again.
  it('never loses new processes when a full resync swaps its table in while a listing refresh is under way', async () => {
    const alive = new Set<number>();
    for (let p = 1; p <= 500; p++) alive.add(p);
    let lastPid = 500;
    const spin = (): void => {
      const until = performance.now() + 0.2;
      while (performance.now() < until);
    };
    const procfs = {
      procDir: '/proc',
      listPids: () => [...alive],
      listPidsAsync: async () => {
        const l = [...alive];
        await new Promise(r => setTimeout(r, 1));
        return l;
      },
      readNSpid: (pid: number) => {
        spin();
        return alive.has(pid) ? [pid, 7] : undefined;
      },
      readStartTime: (pid: number) => (alive.has(pid) ? 1 : undefined),
      readLastPid: () => lastPid,
      readPidMax: () => 1 << 22,
    } as unknown as Procfs;
    const t = new ProcTable(procfs);
    t.refreshFull();
    expect(t.size).toBe(500);
    const resync = t.fullResync(); // reads ns_last_pid 500, lists 1..500
    await new Promise(r => setTimeout(r, 5));
    for (let p = 501; p <= 3000; p++) alive.add(p); // a burst of forks
    lastPid = 3000;
    const batch = t.refreshAsync(); // 2,500 new PIDs: more than a probe, so a listing
    await Promise.all([resync, batch]);
    alive.add(3001);
    lastPid = 3001;
    t.refresh();
    expect([...alive].filter(p => !t.has(p))).toEqual([]);
  });
});
