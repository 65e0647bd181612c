// The decision core (src/core/decision.ts) against a simple reference model.
//
// A small simulated node (marker files in two pods, processes that start,
// exit and reuse PIDs, hard links that come and go, daemon restarts with and
// without the decision state) is driven by random command sequences. After
// every command the core is fed what the daemon's I/O shell would feed it
// (only the files that changed, plus a re-check of everything when processes
// changed, plus whatever the core asks to re-check), and its decisions are
// compared with the reference model, which recomputes everything from
// scratch: kept bindings, then a greedy assignment in age order where equal
// ages that compete tie and block. The properties the issue asks for are also
// asserted directly, so that a bug shared by model and core still fails.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecisionCore,
  type Candidate,
  type ClaimState,
  type Observation,
  type PersistedClaim,
} from '../../src/core/decision.js';

// ---- the simulated world ----------------------------------------------------------

const PATHS = ['a/1.json', 'a/2.json', 'a/3.json', 'a/4.json', 'a/5.json', 'a/6.json', 'b/1.json', 'b/2.json'];
const scopeOf = (p: string): string => p.slice(0, 1);
/** Process slots: [pod, container PID]; host PID = index + 100. */
const SLOTS: [string, number][] = [
  ['a', 7],
  ['a', 7],
  ['a', 8],
  ['a', 9],
  ['a', 10],
  ['b', 7],
];
const ROLES = ['r1', 'r2', 'r3'];

interface Proc {
  pid: number;
  pod: string;
  cpid: number;
  start: number;
  born: bigint;
}

interface File {
  ino: number;
  role: string;
  cpid: number;
  ctime: bigint;
  mtime: bigint;
  content: number;
  links: number;
}

class World {
  clock = 1000n;
  inoSeq = 1;
  contentSeq = 1;
  startSeq = 1;
  files = new Map<string, File>();
  procs = new Map<number, Proc>();

  file(p: string): File | undefined {
    return this.files.get(p);
  }

  observe(p: string, core: DecisionCore | undefined): Observation | undefined {
    const f = this.files.get(p);
    if (!f) return undefined;
    const file = `1:${f.ino}:${f.ino}`;
    if (f.links > 1) return { kind: 'rejected', path: p, file, ctimeNs: f.ctime, reason: 'hard-link' };
    const key = `${file}|${f.content}`;
    const written = core ? core.writtenAt(p, key, f.ctime) : f.ctime;
    return { kind: 'valid', path: p, file, ctimeNs: f.ctime, key, role: `${scopeOf(p)}\u0000t\u0000ag\u0000${f.role}`, evaluation: this.evaluate(p, f, written) };
  }

  /** The mapping rules: same pod, same container PID, started no later than the version was written. */
  evaluate(p: string, f: File, written: bigint): { passing: Candidate[]; failures: string[] } {
    const passing: Candidate[] = [];
    const failures: string[] = [];
    for (const pr of this.procs.values()) {
      if (pr.pod !== scopeOf(p) || pr.cpid !== f.cpid) continue;
      if (pr.born > written) failures.push(`host PID ${pr.pid}: started after the marker`);
      else passing.push({ pid: pr.pid, startTime: pr.start });
    }
    return { passing, failures };
  }
}

// ---- the reference model -------------------------------------------------------------

interface MBinding {
  key: string;
  pid: number;
  start: number;
}

const truthKey = (f: File): string => `1:${f.ino}:${f.ino}|${f.content}`;

class Model {
  bindings = new Map<string, MBinding>();
  stale = new Map<string, string>();
  /** Per path: the version first seen valid, its priority and when it was written. */
  first = new Map<string, { key: string; rank: number; ns: bigint; written: bigint }>();
  states = new Map<string, ClaimState>();
  unordered = false;

  constructor(private readonly exclusive: boolean) {}

  restart(keep: boolean, w: World): void {
    if (!keep) {
      this.bindings.clear();
      this.stale.clear();
      this.first.clear();
      this.unordered = true;
    }
    this.step(w);
    this.unordered = false;
  }

  step(w: World): void {
    for (const [p, fr] of [...this.first]) {
      const f = w.file(p);
      if (!f || truthKey(f) !== fr.key) this.first.delete(p);
    }
    const valid = new Map<string, { key: string; role: string; passing: Candidate[] }>();
    for (const p of PATHS) {
      const f = w.file(p);
      if (!f || f.links > 1) continue;
      const key = truthKey(f);
      if (!this.first.has(p)) this.first.set(p, { key, rank: this.unordered ? 0 : 1, ns: this.unordered ? 0n : f.ctime, written: f.ctime });
      const fr = this.first.get(p) as { written: bigint };
      valid.set(p, { key, role: `${scopeOf(p)}\u0000t\u0000ag\u0000${f.role}`, passing: w.evaluate(p, f, fr.written).passing });
    }
    // Bindings: kept while the version is unchanged and the process is the same.
    for (const [p, b] of [...this.bindings]) {
      const f = w.file(p);
      if (!f || truthKey(f) !== b.key) {
        this.bindings.delete(p);
        continue;
      }
      const pr = w.procs.get(b.pid);
      if (!pr || pr.start !== b.start) {
        this.bindings.delete(p);
        this.stale.set(p, b.key);
      }
    }
    for (const [p, k] of [...this.stale]) {
      const f = w.file(p);
      if (!f || truthKey(f) !== k) this.stale.delete(p);
    }

    const held = new Set<string>();
    for (const [p, b] of this.bindings) {
      held.add(`pid:${b.pid}`);
      if (this.exclusive) held.add(`role:${scopeOf(p)}\u0000t\u0000ag\u0000${(w.file(p) as File).role}`);
    }
    const waiting = [...valid]
      .filter(([p, v]) => !this.bindings.has(p) && this.stale.get(p) !== v.key && v.passing.length === 1)
      .map(([p, v]) => ({
        p,
        res: [`pid:${(v.passing[0] as Candidate).pid}`, ...(this.exclusive ? [`role:${v.role}`] : [])],
        cand: v.passing[0] as Candidate,
        key: v.key,
        prio: this.first.get(p) as { rank: number; ns: bigint },
      }))
      .sort((x, y) => x.prio.rank - y.prio.rank || (x.prio.ns < y.prio.ns ? -1 : x.prio.ns > y.prio.ns ? 1 : 0));
    const taken = new Set(held);
    const conflict = new Set<string>();
    for (let i = 0; i < waiting.length; ) {
      let j = i;
      while (j < waiting.length && waiting[j]!.prio.rank === waiting[i]!.prio.rank && waiting[j]!.prio.ns === waiting[i]!.prio.ns) j++;
      const group = waiting.slice(i, j);
      i = j;
      const eligible = group.filter(c => c.res.every(r => !taken.has(r)));
      for (const c of group) if (!eligible.includes(c)) conflict.add(c.p);
      for (const c of eligible) {
        const tied = eligible.some(o => o !== c && o.res.some(r => c.res.includes(r)));
        if (tied) conflict.add(c.p);
        else this.bindings.set(c.p, { key: c.key, pid: c.cand.pid, start: c.cand.startTime });
      }
      for (const c of eligible) for (const r of c.res) taken.add(r);
    }
    this.states.clear();
    for (const p of PATHS) {
      const f = w.file(p);
      if (!f) continue;
      const v = valid.get(p);
      if (this.bindings.has(p)) this.states.set(p, v ? 'mapped' : 'rejected');
      else if (this.stale.get(p) === truthKey(f)) this.states.set(p, 'stale');
      else if (!v) this.states.set(p, 'rejected');
      else if (v.passing.length === 0) this.states.set(p, 'pending');
      else this.states.set(p, conflict.has(p) || v.passing.length > 1 ? 'conflict' : 'mapped');
    }
  }
}

// ---- the harness: what the daemon's shell does ------------------------------------------

class Harness {
  core: DecisionCore;
  persisted = new Map<string, PersistedClaim>();
  counts = { bound: 0, tie: 0, suspended: 0, stale: 0, recheck: 0, restartKept: 0, restartLost: 0, heldConflict: 0, resumed: 0 };

  constructor(
    readonly w: World,
    readonly exclusive: boolean,
  ) {
    this.core = new DecisionCore({ exclusiveRoles: exclusive });
  }

  /** One batch: observe `paths`, report dead bound processes, settle, re-check what the core asks. */
  batch(paths: Iterable<string>): void {
    this.core.beginBatch();
    for (const p of paths) this.observe(p);
    for (const [, cand] of this.core.bindings()) {
      const pr = this.w.procs.get(cand.pid);
      if (!pr || pr.start !== cand.startTime) this.core.processGone(cand.pid, pr?.start);
    }
    for (let round = 0; ; round++) {
      const s = this.core.settle();
      this.counts.bound += s.bound.length;
      this.counts.suspended += s.suspended.length;
      this.counts.resumed += s.resumed.length;
      for (const [p, r] of s.persist) {
        if (r === null) this.persisted.delete(p);
        else this.persisted.set(p, r);
      }
      for (const v of s.states.values()) {
        if (v.reason.includes('equal age')) this.counts.tie++;
        if (v.state === 'stale') this.counts.stale++;
        if (v.reason.includes('already hold')) this.counts.heldConflict++;
      }
      if (s.recheck.length === 0) break;
      expect(round).toBeLessThan(10);
      this.counts.recheck += s.recheck.length;
      for (const p of s.recheck) this.observe(p);
    }
  }

  private observe(p: string): void {
    const o = this.w.observe(p, this.core);
    if (o) this.core.observe(o);
    else this.core.remove(p);
  }

  restart(keep: boolean): void {
    if (keep) this.counts.restartKept++;
    else this.counts.restartLost++;
    this.core = new DecisionCore({ exclusiveRoles: this.exclusive });
    const records = keep ? [...this.persisted.values()] : [];
    if (!keep) this.persisted.clear();
    this.core.restore(records, {
      lost: !keep,
      alive: c => this.w.procs.get(c.pid)?.start === c.startTime,
    });
    this.batch(PATHS);
    this.core.startupDone();
    this.batch([]);
  }

  states(): Map<string, ClaimState> {
    const out = new Map<string, ClaimState>();
    for (const p of PATHS) {
      const v = this.core.view(p);
      if (v && this.w.file(p)) out.set(p, v.state);
    }
    return out;
  }

  bindingMap(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [p, c] of this.core.bindings()) out.set(p, c.pid);
    return out;
  }
}

type Cmd =
  | { k: 'write'; p: number; role: number; cpid: number }
  | { k: 'rewriteSame'; p: number }
  | { k: 'remove'; p: number }
  | { k: 'link'; p: number }
  | { k: 'unlink'; p: number }
  | { k: 'unlinkAll' }
  | { k: 'spawn'; slot: number }
  | { k: 'kill'; slot: number }
  | { k: 'tick' }
  | { k: 'restart'; keep: boolean };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('write' as const), p: fc.nat(PATHS.length - 1), role: fc.nat(ROLES.length - 1), cpid: fc.constantFrom(7, 7, 8, 9, 10) }), weight: 8 },
  { arbitrary: fc.record({ k: fc.constant('rewriteSame' as const), p: fc.nat(PATHS.length - 1) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('remove' as const), p: fc.nat(PATHS.length - 1) }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('link' as const), p: fc.nat(PATHS.length - 1) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('unlink' as const), p: fc.nat(PATHS.length - 1) }), weight: 3 },
  { arbitrary: fc.constant({ k: 'unlinkAll' as const }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('spawn' as const), slot: fc.nat(SLOTS.length - 1) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('kill' as const), slot: fc.nat(SLOTS.length - 1) }), weight: 2 },
  { arbitrary: fc.constant({ k: 'tick' as const }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('restart' as const), keep: fc.boolean() }), weight: 2 },
);

/** Applies one command to the world; returns the paths whose files changed, or 'all' when processes changed. */
function apply(w: World, c: Cmd): string[] | 'all' | 'restart' {
  switch (c.k) {
    case 'write': {
      const p = PATHS[c.p] as string;
      w.files.set(p, { ino: w.inoSeq++, role: ROLES[c.role] as string, cpid: c.cpid, ctime: w.clock, mtime: w.clock, content: w.contentSeq++, links: 1 });
      return [p];
    }
    case 'rewriteSame': {
      const f = w.files.get(PATHS[c.p] as string);
      if (!f) return [];
      f.mtime = w.clock;
      f.ctime = w.clock;
      return [PATHS[c.p] as string];
    }
    case 'remove':
      w.files.delete(PATHS[c.p] as string);
      return [PATHS[c.p] as string];
    case 'link':
    case 'unlink': {
      const f = w.files.get(PATHS[c.p] as string);
      if (!f) return [];
      const links = c.k === 'link' ? 2 : 1;
      if (f.links === links) return [];
      f.links = links;
      f.ctime = w.clock; // a link count change moves ctime, not mtime
      return [PATHS[c.p] as string];
    }
    case 'unlinkAll': {
      const changed: string[] = [];
      for (const [p, f] of w.files) {
        if (f.links === 1) continue;
        f.links = 1;
        f.ctime = w.clock;
        changed.push(p);
      }
      return changed;
    }
    case 'spawn': {
      const [pod, cpid] = SLOTS[c.slot] as [string, number];
      const pid = 100 + c.slot;
      w.procs.set(pid, { pid, pod, cpid, start: w.startSeq++, born: w.clock });
      return 'all';
    }
    case 'kill':
      if (!w.procs.delete(100 + c.slot)) return [];
      return 'all';
    case 'tick':
      w.clock += 10n;
      return [];
    case 'restart':
      return 'restart';
  }
}

function run(cmds: Cmd[], exclusive: boolean, totals: Harness['counts']): void {
  const w = new World();
  const h = new Harness(w, exclusive);
  const m = new Model(exclusive);
  // Processes that exist from the start, so that early claims can bind.
  for (const slot of [2, 3, 4, 5]) w.procs.set(100 + slot, { pid: 100 + slot, pod: SLOTS[slot]![0], cpid: SLOTS[slot]![1], start: w.startSeq++, born: w.clock });
  w.clock += 10n;
  h.restart(true);
  m.restart(true, w);
  for (const c of cmds) {
    const before = h.bindingMap();
    const touched = apply(w, c);
    if (touched === 'restart') {
      h.restart((c as { keep: boolean }).keep);
      m.restart((c as { keep: boolean }).keep, w);
    } else {
      h.batch(touched === 'all' ? PATHS : touched);
      m.step(w);
    }
    const got = h.states();
    expect(Object.fromEntries(got), `after ${JSON.stringify(c)}`).toEqual(Object.fromEntries(m.states));
    expect(Object.fromEntries(h.bindingMap())).toEqual(Object.fromEntries([...m.bindings].map(([p, b]) => [p, b.pid])));

    // Direct properties: a binding moves only by its own file, its process, or lost state.
    const after = h.bindingMap();
    for (const [p, pid] of before) {
      const pr = w.procs.get(pid);
      const ownFileChanged = (c.k === 'write' || c.k === 'remove') && PATHS[c.p] === p;
      const holderGone = pr === undefined || (c.k === 'spawn' && 100 + c.slot === pid) || (c.k === 'kill' && 100 + c.slot === pid);
      const lost = c.k === 'restart' && !c.keep;
      if (!ownFileChanged && !holderGone && !lost) expect(after.get(p), `binding ${p} -> ${pid} moved by ${JSON.stringify(c)}`).toBe(pid);
    }
    // No PID holds two claims; with exclusive roles no role has two holders in a scope.
    const pids = [...after.values()];
    expect(new Set(pids).size).toBe(pids.length);
  }
  for (const k of Object.keys(totals) as (keyof Harness['counts'])[]) totals[k] += h.counts[k];
}

describe('DecisionCore against the reference model', () => {
  for (const exclusive of [true, false]) {
    it(`makes the model's decisions for random histories (exclusive_roles=${exclusive})`, () => {
      const totals = { bound: 0, tie: 0, suspended: 0, stale: 0, recheck: 0, restartKept: 0, restartLost: 0, heldConflict: 0, resumed: 0 };
      fc.assert(
        fc.property(fc.array(cmdArb, { minLength: 5, maxLength: 80 }), cmds => run(cmds, exclusive, totals)),
        { numRuns: 400 },
      );
      // The generator reaches every branch the properties are about.
      for (const [k, v] of Object.entries(totals)) expect(v, `${k} never happened`).toBeGreaterThan(0);
    });
  }
});

describe('DecisionCore scenarios', () => {
  const role = (r: string): string => `a\u0000t\u0000ag\u0000${r}`;
  const valid = (path: string, ino: number, r: string, ctime: bigint, pids: number[]): Observation => ({
    kind: 'valid',
    path,
    file: `1:${ino}:0`,
    ctimeNs: ctime,
    key: `1:${ino}:0|${r}:${pids.join(',')}`,
    role: role(r),
    evaluation: { passing: pids.map(pid => ({ pid, startTime: pid * 10 })), failures: [] },
  });
  const settleAll = (core: DecisionCore): void => {
    for (;;) if (core.settle().recheck.length === 0) return;
  };

  // Review of the narrowed liveness pass: a pass that yielded holds an older
  // list of bindings; what it read must not end a newer binding of the same PID.
  it('ends a binding on "process gone" only when the start time read differs from that binding\'s', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    core.beginBatch();
    core.observe(valid('p/researcher.json', 1, 'researcher', 100n, [11]));
    settleAll(core);
    expect(core.holderOf(11)).toBe('p/researcher.json');
    core.processGone(11, 110); // the start time of the process it is bound to (11 * 10)
    settleAll(core);
    expect(core.holderOf(11)).toBe('p/researcher.json');
    core.processGone(11, 111); // another process on that PID
    settleAll(core);
    expect(core.holderOf(11)).toBeUndefined();
  });

  it('keeps swapped claims out after a restart: the earlier bindings stand, not the file names', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    core.beginBatch();
    core.observe(valid('p/researcher.json', 1, 'researcher', 100n, [11]));
    core.observe(valid('p/writer.json', 2, 'writer', 100n + 5n, [12]));
    settleAll(core);
    core.beginBatch();
    core.observe(valid('p/0-evil-a.json', 3, 'researcher', 200n, [12]));
    core.observe(valid('p/0-evil-b.json', 4, 'writer', 201n, [11]));
    const s = core.settle();
    expect([...s.states.values()].map(v => v.state)).toEqual(['conflict', 'conflict']);
    const records = new Map<string, PersistedClaim>();
    // Collect what would be persisted over the whole history.
    const fresh = new DecisionCore({ exclusiveRoles: true });
    fresh.beginBatch();
    for (const o of [valid('p/researcher.json', 1, 'researcher', 100n, [11]), valid('p/writer.json', 2, 'writer', 105n, [12])]) fresh.observe(o);
    for (const [p, r] of fresh.settle().persist) if (r) records.set(p, r);
    fresh.beginBatch();
    for (const o of [valid('p/0-evil-a.json', 3, 'researcher', 200n, [12]), valid('p/0-evil-b.json', 4, 'writer', 201n, [11])]) fresh.observe(o);
    for (const [p, r] of fresh.settle().persist) if (r) records.set(p, r);

    const restarted = new DecisionCore({ exclusiveRoles: true });
    restarted.restore(records.values(), { lost: false, alive: () => true });
    restarted.beginBatch();
    // The startup scan lists names in order: evil first.
    for (const o of [
      valid('p/0-evil-a.json', 3, 'researcher', 200n, [12]),
      valid('p/0-evil-b.json', 4, 'writer', 201n, [11]),
      valid('p/researcher.json', 1, 'researcher', 100n, [11]),
      valid('p/writer.json', 2, 'writer', 105n, [12]),
    ])
      restarted.observe(o);
    settleAll(restarted);
    restarted.startupDone();
    expect(restarted.view('p/researcher.json')).toMatchObject({ state: 'mapped', hostPid: 11 });
    expect(restarted.view('p/writer.json')).toMatchObject({ state: 'mapped', hostPid: 12 });
    expect(restarted.view('p/0-evil-a.json')?.state).toBe('conflict');
    expect(restarted.view('p/0-evil-b.json')?.state).toBe('conflict');
  });

  it('suspends a holder whose file gets a hard link, and a queued rival never takes the role', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    core.beginBatch();
    core.observe(valid('p/holder.json', 1, 'researcher', 100n, [11]));
    settleAll(core);
    core.beginBatch();
    core.observe(valid('p/rival.json', 2, 'researcher', 200n, [12]));
    settleAll(core);
    expect(core.view('p/rival.json')?.state).toBe('conflict');
    core.beginBatch();
    core.observe({ kind: 'rejected', path: 'p/holder.json', file: '1:1:0', ctimeNs: 300n, reason: 'hard-link' });
    const s = core.settle();
    expect(s.suspended).toEqual([{ path: 'p/holder.json', cand: { pid: 11, startTime: 110 } }]);
    expect(s.bound).toEqual([]);
    expect(core.view('p/holder.json')).toMatchObject({ state: 'rejected', hostPid: 11 });
    expect(core.view('p/rival.json')?.state).toBe('conflict');
    core.beginBatch();
    core.observe(valid('p/holder.json', 1, 'researcher', 400n, [11]));
    const back = core.settle();
    expect(back.resumed).toEqual([{ path: 'p/holder.json', cand: { pid: 11, startTime: 110 } }]);
    expect(core.view('p/holder.json')).toMatchObject({ state: 'mapped', hostPid: 11 });
  });

  it('re-decides a tie two resources away from the change that broke it', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    const step = (fn: () => void): void => {
      core.beginBatch();
      fn();
      for (;;) {
        const s = core.settle();
        if (s.recheck.length === 0) return;
        for (const p of s.recheck) core.observe(all.get(p) as Observation);
      }
    };
    const all = new Map<string, Observation>([
      ['p/h.json', valid('p/h.json', 1, 'x', 100n, [11])],
      ['p/d.json', valid('p/d.json', 2, 'r', 200n, [11])],
      ['p/m.json', valid('p/m.json', 3, 'r', 300n, [12])],
      ['p/e.json', valid('p/e.json', 4, 's', 300n, [12])],
    ]);
    step(() => core.observe(all.get('p/h.json') as Observation));
    step(() => core.observe(all.get('p/d.json') as Observation));
    step(() => {
      core.observe(all.get('p/m.json') as Observation);
      core.observe(all.get('p/e.json') as Observation);
    });
    expect(core.view('p/d.json')?.reason).toMatch(/already holds/);
    expect(core.view('p/m.json')?.reason).toMatch(/equal age/);
    expect(core.view('p/e.json')?.reason).toMatch(/equal age/);
    // The holder of PID 11 goes: d (older) takes role r, so m is blocked and e is alone for PID 12.
    step(() => {
      all.delete('p/h.json');
      core.remove('p/h.json');
    });
    expect(core.view('p/d.json')).toMatchObject({ state: 'mapped', hostPid: 11 });
    expect(core.view('p/m.json')?.reason).toMatch(/already held/);
    expect(core.view('p/e.json')).toMatchObject({ state: 'mapped', hostPid: 12 });
  });

  it('uses the first-observed ctime for the rules, not a later metadata change', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    core.beginBatch();
    const o = valid('p/x.json', 1, 'r', 100n, []);
    core.observe(o);
    core.settle();
    expect(core.writtenAt('p/x.json', (o as { key: string }).key, 999n)).toBe(100n);
    expect(core.writtenAt('p/x.json', 'other-version', 999n)).toBe(999n);
  });

  it('maps nothing contended after the decision state was lost, and what is uncontended still maps', () => {
    const core = new DecisionCore({ exclusiveRoles: true });
    core.restore([], { lost: true, alive: () => true });
    core.beginBatch();
    core.observe(valid('p/holder.json', 1, 'researcher', 100n, [11]));
    core.observe(valid('p/evil.json', 2, 'researcher', 50n, [12]));
    core.observe(valid('p/writer.json', 3, 'writer', 100n, [13]));
    settleAll(core);
    core.startupDone();
    expect(core.view('p/holder.json')?.state).toBe('conflict');
    expect(core.view('p/evil.json')?.state).toBe('conflict');
    expect(core.view('p/holder.json')?.reason).toMatch(/equal age/);
    expect(core.view('p/writer.json')).toMatchObject({ state: 'mapped', hostPid: 13 });
    // A younger claim cannot jump the tie.
    core.beginBatch();
    core.observe(valid('p/late.json', 4, 'researcher', 500n, [14]));
    settleAll(core);
    expect(core.view('p/late.json')?.state).toBe('conflict');
    // The tie ends when one side goes.
    core.beginBatch();
    core.remove('p/evil.json');
    core.observe(valid('p/holder.json', 1, 'researcher', 100n, [11]));
    settleAll(core);
    expect(core.view('p/holder.json')).toMatchObject({ state: 'mapped', hostPid: 11 });
  });
});
