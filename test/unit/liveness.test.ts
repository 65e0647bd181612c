// Which mapped PIDs a liveness pass reads (src/daemon/liveness.ts): the pure
// planner, on made-up counters. The reconciler test runs it on real processes.
import { describe, expect, it } from 'vitest';
import { LivenessPlanner, MAX_GAP_MS, type PassStart } from '../../src/daemon/liveness.js';

const MAX = 4_194_304;
/** A pass start; the fork counter moves with lastPid unless told otherwise. */
const pass = (now: number, lastPid: number | undefined, live: number[] | undefined, o: Partial<PassStart> = {}): PassStart => ({
  now,
  lastPid,
  pidMax: MAX,
  forks: lastPid === undefined ? 0 : 10_000_000 + lastPid,
  live: live && new Set(live),
  sameNamespace: true,
  full: false,
  ...o,
});

/** A planner that has completed one pass at time 0 with ns_last_pid = `last`. */
function after(last: number): LivenessPlanner {
  const p = new LivenessPlanner();
  const first = pass(0, last, [1, 2, 3]);
  expect(p.plan(first).full).toBe(true); // nothing to go from yet
  p.completed(first);
  return p;
}

describe('LivenessPlanner', () => {
  it('reads only PIDs missing from the listing or allocated since the previous pass', () => {
    const plan = after(1000).plan(pass(2000, 1010, [500, 999, 1000, 1001, 1010, 1011]));
    expect(plan.full).toBe(false);
    expect(plan.mustRead(500)).toBe(false); // listed, older than the previous pass: the same process
    expect(plan.mustRead(1000)).toBe(false); // allocated before the previous pass read ns_last_pid
    expect(plan.mustRead(1001)).toBe(true); // allocated since: maybe a new process on an old number
    expect(plan.mustRead(1010)).toBe(true);
    expect(plan.mustRead(1011)).toBe(false); // listed, outside the range (allocated after this pass read the counter: the next pass's range)
    expect(plan.mustRead(700)).toBe(true); // not listed: exited
  });

  it('follows the counter round the end of the PID space', () => {
    const plan = after(MAX - 3).plan(pass(2000, 5, [MAX - 3, MAX - 1, 2, 5, 6, 100], { forks: 10_000_000 + MAX - 3 + 8 }));
    expect(plan.full).toBe(false);
    expect([MAX - 3, MAX - 1, 2, 5, 6, 100].filter(p => plan.mustRead(p))).toEqual([MAX - 1, 2, 5]);
  });

  it('reads everything when it cannot reason about the counter: no previous pass, no counter, no listing, another namespace, pid_max changed, the counter gone round (or more tasks created than a quarter of pid_max), a long gap, a clock gone back, or a full resync', () => {
    expect(after(1000).plan(pass(2000, undefined, [1])).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, undefined)).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { pidMax: undefined })).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { forks: undefined })).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { sameNamespace: false })).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { pidMax: 32_768 })).full).toBe(true); // lowered: the counter restarts low
    expect(after(1000).plan(pass(2000, MAX, [1])).full).toBe(true);
    // All the way round and 10 more: the range alone would look like (1000, 1010].
    expect(after(1000).plan(pass(2000, 1010, [1], { forks: 10_001_000 + MAX + 10 })).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { forks: 10_001_000 + MAX / 4 + 1 })).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { forks: 5 })).full).toBe(true); // a counter that went back: another boot's?
    expect(after(1000).plan(pass(MAX_GAP_MS + 1, 1010, [1])).full).toBe(true);
    expect(after(1000).plan(pass(-1, 1010, [1])).full).toBe(true);
    expect(after(1000).plan(pass(2000, 1010, [1], { full: true })).full).toBe(true);
    expect(after(1000).plan(pass(MAX_GAP_MS, 1010, [1], { forks: 10_001_000 + MAX / 4 })).full).toBe(false); // the limits themselves still narrow
  });

  it('reads the range all the way round, not nothing, when root wrote ns_last_pid back and forked', () => {
    const plan = after(1000).plan(pass(2000, 499, [10, 499, 500, 999, 1000, 1001], { forks: 10_001_000 + 3 }));
    expect(plan.full).toBe(false);
    expect([10, 499, 500, 999, 1000, 1001].filter(p => plan.mustRead(p))).toEqual([10, 499, 1001]); // (1000, 499] the long way
  });

  it('goes from the start of the last completed pass only', () => {
    const p = after(1000);
    const abandoned = pass(2000, 1010, [1]);
    p.plan(abandoned); // never completed (the daemon closed in the middle)
    const plan = p.plan(pass(4000, 1020, [1005, 1015]));
    expect(plan.mustRead(1005)).toBe(true); // still in range: (1000, 1020]
    p.completed(pass(4000, 1020, [1]));
    expect(p.plan(pass(6000, 1030, [1005, 1015])).mustRead(1015)).toBe(false);
    p.completed(pass(6000, undefined, [1]));
    expect(p.plan(pass(8000, 1040, [1])).full).toBe(true); // the counter was unreadable last time
  });
});
