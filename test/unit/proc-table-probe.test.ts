// ProcTable's probe refresh: only the PIDs allocated since the last refresh
// (from ns_last_pid) are read, instead of listing all of /proc.
import { describe, expect, it } from 'vitest';
import type { Procfs } from '../../src/daemon/procfs.js';
import { ProcTable } from '../../src/daemon/proc-table.js';

function fakeProcfs(procs: Map<number, { cpid: number; start: number }>, state: { last: number; lists: number; reads: number[] }): Procfs {
  return {
    procDir: '/fake',
    listPids: () => {
      state.lists++;
      return [...procs.keys()];
    },
    readNSpid: pid => {
      state.reads.push(pid);
      const p = procs.get(pid);
      return p ? [pid, p.cpid] : undefined;
    },
    readStartTime: pid => procs.get(pid)?.start,
    readPidNs: () => 1,
    readCgroup: () => ({}),
    bootTimeNs: () => 0n,
    recalibrate: () => undefined,
    bootId: () => 'test',
    rootOf: pid => `/fake/${pid}/root`,
    readLastPid: () => state.last,
    readPidMax: () => 32768,
  };
}

describe('ProcTable probe refresh', () => {
  it('reads only the newly allocated PID range, and lists /proc when the range is large', async () => {
    const procs = new Map([[100, { cpid: 1, start: 5 }], [101, { cpid: 2, start: 6 }]]);
    const state = { last: 101, lists: 0, reads: [] as number[] };
    const table = new ProcTable(fakeProcfs(procs, state));
    await table.fullResync();
    expect(state.lists).toBe(1);
    procs.set(103, { cpid: 7, start: 9 });
    state.last = 103;
    state.reads = [];
    table.refresh();
    expect(state.lists).toBe(1); // no listing
    expect(state.reads).toEqual([102, 103]);
    expect(table.lastWasProbe).toBe(true);
    expect(table.candidates(7).map(c => c.pid)).toEqual([103]);

    // Nothing allocated: nothing read.
    state.reads = [];
    table.refresh();
    expect(state.reads).toEqual([]);

    // A new PID in the range is read; PID 101, reused outside the range, is stale until used.
    procs.set(101, { cpid: 9, start: 50 });
    procs.set(104, { cpid: 3, start: 51 });
    state.last = 104;
    table.refresh();
    expect(table.candidates(3).map(c => c.pid)).toEqual([104]);

    // Wrapped around with a large span: falls back to listing /proc.
    state.last = 50; // (104 → 50) is a span of ~32,700 allocations
    table.refresh();
    expect(state.lists).toBe(2);
    expect(table.lastWasProbe).toBe(false);
    // Known PIDs are not re-read by a listing; using the stale one as a candidate re-validates it.
    expect(table.candidates(2)).toEqual([]);
    expect(table.candidates(9).map(c => c.pid)).toEqual([101]);
  });
});
