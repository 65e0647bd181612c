// The identity decision, as a pure state machine (no I/O; time is injected).
//
// Input: observations of marker files (their kernel identity, whether they
// could be read, the claim they make and which processes pass the mapping
// rules), the exits of bound processes, and the decision state persisted by
// an earlier run. Output: which claim is bound to which process, the state of
// every claim (mapped, pending, conflict, rejected, stale) with its reason,
// and the records to persist. Same inputs, same decisions.
//
// The rules of the decision:
//  1. A binding (claim -> process) holds for as long as the claim's version
//     (file identity + content) is unchanged and the process is alive with
//     the same start time. Nothing else moves it: not other files, not a
//     restart, not a transient problem with the holder's own file (a hard link,
//     a rejected read), which only *suspends* it: the role and the PID stay
//     reserved, nothing is answered for them, and the binding resumes when the
//     same version reads cleanly again. Rewriting or removing the holder's
//     file, or the holder's exit, ends it.
//  2. A binding whose process exits (or is replaced) makes its claim version
//     stale: that version never maps again; the file must be rewritten.
//  3. Free resources (a host PID; with exclusive roles, a role in a scope) go to
//     waiting claims in order of age: the ctime of the claim version when it
//     was first observed, persisted, so never the file name and never a later
//     metadata change. Claims of equal age that compete for a resource form a
//     tie: none of them maps, and the resource stays reserved against younger
//     claims, until the tie is gone.
//  4. After the decision state was lost, every claim present at startup has
//     the same (unknown) age, so any contention among them is a tie: the
//     daemon maps what the kernel rules prove on their own and nothing that
//     depends on who came first.
//
// Work is incremental: a settle() looks only at the claims that share a
// resource, transitively, with something that changed (a pod's claims never
// share resources with another pod's).

export type ClaimState = 'mapped' | 'pending' | 'conflict' | 'rejected' | 'stale';

/** Priority of a claim version: lower is older, first in line. */
export interface Priority {
  /** 0: present at a startup without decision state (age unknown); 1: age known. */
  readonly rank: 0 | 1;
  /** ctime (ns) of the version when first observed; 0 for rank 0. */
  readonly ns: bigint;
}

export interface Candidate {
  readonly pid: number;
  readonly startTime: number;
}

/** The mapping rules' verdict for one claim: processes that pass, and why others fail. */
export interface Evaluation {
  readonly passing: readonly Candidate[];
  /** Why some of the others fail (at most MAX_FAILURES_SHOWN of them, kept for the reason). */
  readonly failures: readonly string[];
  /** How many more failed than `failures` says. */
  readonly moreFailures?: number;
}

/** Failures a reason names; the rest are counted. */
export const MAX_FAILURES_SHOWN = 8;

interface ObservationBase {
  readonly path: string;
  /** Kernel identity of the file: device, inode, birth time. */
  readonly file: string;
  /** ctime (ns) now. */
  readonly ctimeNs: bigint;
}

export type Observation =
  | (ObservationBase & {
      readonly kind: 'valid';
      /** Claim version: file identity plus a digest of the content. */
      readonly key: string;
      /** What the claim asks for: its role, scoped (scope, tenant, agent, role). */
      readonly role: string;
      /** Rules verdict; required unless needsEvaluation() said no. */
      readonly evaluation?: Evaluation | undefined;
    })
  | (ObservationBase & {
      readonly kind: 'rejected';
      readonly reason: string;
      /** Set when the content was read (and is invalid): the version it is. */
      readonly key?: string;
    })
  /** Rejected before the file could be identified (a bad name, a vanished inode). */
  | { readonly kind: 'unidentified'; readonly path: string; readonly reason: string };

/** What survives a restart, one record per marker path. */
export interface PersistedClaim {
  readonly path: string;
  readonly key: string;
  readonly file: string;
  readonly role: string;
  readonly rank: 0 | 1;
  /** Priority age, ns (decimal string in JSON). */
  readonly age: bigint;
  /** ctime (ns) of the version when first observed: the writer must have started before it. */
  readonly written: bigint;
  readonly bound?: Candidate | undefined;
  readonly stale?: boolean | undefined;
}

export type UnbindCause = 'exited' | 'start_time_changed' | 'marker_removed' | 'marker_changed';

export interface Settlement {
  /** Bindings made (restored: re-established from persisted state at startup). */
  readonly bound: { readonly path: string; readonly cand: Candidate; readonly restored: boolean }[];
  /** Bindings ended. */
  readonly unbound: { readonly path: string; readonly cand: Candidate; readonly cause: UnbindCause }[];
  /** Bound claims whose file is unreadable for now (unpublish) or readable again (republish). */
  readonly suspended: { readonly path: string; readonly cand: Candidate }[];
  readonly resumed: { readonly path: string; readonly cand: Candidate }[];
  /** Claims whose state or reason changed. */
  readonly states: Map<string, ClaimView>;
  /** Records to persist (null: forget the path). */
  readonly persist: Map<string, PersistedClaim | null>;
  /**
   * Claims that would map now but were evaluated before this batch: the caller
   * re-evaluates them (processes may have exited) and settles again.
   */
  readonly recheck: string[];
}

export interface ClaimView {
  readonly state: ClaimState;
  readonly reason: string;
  readonly hostPid: number | undefined;
  /** Waits for processes to change (pending, ambiguous): worth re-evaluating from time to time. */
  readonly retry?: boolean;
}

interface Binding {
  readonly cand: Candidate;
  suspended: boolean;
}

interface Claim {
  readonly path: string;
  file: string | undefined;
  /** undefined while the file is rejected without a known version. */
  key: string | undefined;
  role: string | undefined;
  rejected: string | undefined;
  prio: Priority;
  written: bigint;
  evaluation: Evaluation | undefined;
  evalEpoch: number;
  binding: Binding | undefined;
  /** Why the version is stale, if it is. */
  stale: string | undefined;
  /** Resources wanted while waiting (single candidate, unbound, valid, fresh or not). */
  want: string[];
  view: ClaimView;
  /** Restored from persisted state and not yet observed by this run. */
  unconfirmed: boolean;
}

export function comparePriority(a: Priority, b: Priority): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0;
}

const pidRes = (pid: number): string => `pid:${pid}`;
const roleRes = (role: string): string => `role:${role}`;

/** Human form of a scoped role key (scope NUL tenant NUL agent NUL role). */
export function roleName(role: string): string {
  const parts = role.split('\u0000');
  return parts.length >= 4 ? `${parts[3]} (tenant ${parts[1]}, agent ${parts[2]})` : role;
}

function resName(res: string): string {
  return res.startsWith('pid:') ? `host PID ${res.slice(4)}` : `role ${roleName(res.slice(5))}`;
}

export interface DecisionOptions {
  readonly exclusiveRoles: boolean;
}

export class DecisionCore {
  private readonly claims = new Map<string, Claim>();
  /** Resource -> path of the binding that holds it (suspended ones too). */
  private readonly held = new Map<string, string>();
  /** Resource -> paths of waiting claims that want it. */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly dirtyPaths = new Set<string>();
  private readonly dirtyRes = new Set<string>();
  private epoch = 0;
  /** While true, new versions get rank 0 (decision state was lost). */
  private startupUnordered = false;
  private out: Settlement = DecisionCore.emptySettlement();

  constructor(private readonly o: DecisionOptions) {}

  private static emptySettlement(): Settlement {
    return { bound: [], unbound: [], suspended: [], resumed: [], states: new Map(), persist: new Map(), recheck: [] };
  }

  // ---- startup ------------------------------------------------------------------

  /**
   * Loads the persisted state before the startup scan. `alive` says whether a
   * bound process still runs with the recorded start time (false for
   * everything after a reboot). With `lost`, no state could be loaded: claims
   * seen during the startup scan get the same unknown age.
   */
  restore(records: Iterable<PersistedClaim>, ctx: { lost: boolean; alive(c: Candidate): boolean }): void {
    this.startupUnordered = ctx.lost;
    for (const r of records) {
      const c: Claim = {
        path: r.path,
        file: r.file,
        key: r.key,
        role: r.role,
        rejected: undefined,
        prio: { rank: r.rank, ns: r.rank === 0 ? 0n : r.age },
        written: r.written,
        evaluation: undefined,
        evalEpoch: -1,
        binding: undefined,
        stale: r.stale ? 'the process this marker version was mapped to is gone' : undefined,
        want: [],
        view: { state: 'pending', reason: 'restored; not yet observed', hostPid: undefined },
        unconfirmed: true,
      };
      if (r.bound && !r.stale) {
        if (ctx.alive(r.bound)) {
          // Reserved now; published once the startup scan sees the same version.
          c.binding = { cand: r.bound, suspended: true };
          this.hold(c);
        } else {
          c.stale = `mapped process exited while the daemon was down (host PID ${r.bound.pid})`;
        }
      }
      this.claims.set(r.path, c);
    }
  }

  /** The startup scan is over: forget restored claims whose file is gone; new versions get real ages. */
  startupDone(): void {
    this.startupUnordered = false;
    for (const c of [...this.claims.values()]) if (c.unconfirmed) this.remove(c.path);
  }

  // ---- queries --------------------------------------------------------------------

  /** ctime (ns) the rules must use for this version: when it was first observed. */
  writtenAt(path: string, key: string, ctimeNs: bigint): bigint {
    const c = this.claims.get(path);
    return c !== undefined && c.key === key ? c.written : ctimeNs;
  }

  /** Does an observation of this version need the rules evaluated (not bound, not stale)? */
  needsEvaluation(path: string, key: string): boolean {
    const c = this.claims.get(path);
    if (c === undefined || c.key !== key) return true;
    return c.binding === undefined && c.stale === undefined;
  }

  view(path: string): ClaimView | undefined {
    return this.claims.get(path)?.view;
  }

  /** Path of the claim bound to this host PID (suspended or not). */
  holderOf(pid: number): string | undefined {
    return this.held.get(pidRes(pid));
  }

  /** Every binding: path -> candidate (suspended ones included). */
  *bindings(): IterableIterator<[string, Candidate, boolean]> {
    for (const c of this.claims.values()) if (c.binding) yield [c.path, c.binding.cand, c.binding.suspended];
  }

  /** The process of every binding (suspended ones included), as of now: one array, no entry objects (11,000 of them each liveness pass made garbage). */
  boundCandidates(): Candidate[] {
    const out: Candidate[] = [];
    for (const c of this.claims.values()) if (c.binding) out.push(c.binding.cand);
    return out;
  }

  get size(): number {
    return this.claims.size;
  }

  /** Every record to persist (a journal compaction). */
  *records(): IterableIterator<PersistedClaim> {
    for (const c of this.claims.values()) {
      const r = this.record(c);
      if (r) yield r;
    }
  }

  // ---- inputs ---------------------------------------------------------------------

  /** Starts a batch: evaluations observed from now on are fresh. */
  beginBatch(): void {
    this.epoch++;
  }

  observe(obs: Observation): void {
    let c = this.claims.get(obs.path);
    if (obs.kind === 'unidentified') {
      if (c) this.endBinding(c, 'marker_changed');
      c ??= this.newClaim(obs.path);
      this.setVersion(c, undefined, undefined);
      c.rejected = obs.reason;
      c.unconfirmed = false;
      this.touch(c);
      return;
    }
    c ??= this.newClaim(obs.path);
    const wasUnconfirmed = c.unconfirmed;
    c.unconfirmed = false;
    if (obs.kind === 'rejected') {
      // The same file that cannot be read cleanly for now (a hard link, a
      // failed read): a binding is suspended, a stale version stays stale;
      // whether the content changed is decided when it reads cleanly again.
      const contentChanged = obs.key !== undefined && obs.key !== c.key;
      if (c.file === obs.file && c.key !== undefined && !contentChanged) {
        if (c.binding) this.suspend(c);
      } else {
        this.endBinding(c, 'marker_changed');
        this.setVersion(c, undefined, obs.file);
      }
      c.rejected = obs.reason;
      this.touch(c);
      return;
    }
    c.rejected = undefined;
    if (c.key !== obs.key) {
      this.endBinding(c, 'marker_changed');
      this.setVersion(c, obs.key, obs.file);
      c.role = obs.role;
      c.prio = this.startupUnordered ? { rank: 0, ns: 0n } : { rank: 1, ns: obs.ctimeNs };
      c.written = obs.ctimeNs;
      this.persistLater(c);
    }
    if (c.binding) {
      if (c.binding.suspended) this.resume(c, wasUnconfirmed);
    } else if (obs.evaluation) {
      c.evaluation = obs.evaluation;
      c.evalEpoch = this.epoch;
    }
    this.touch(c);
  }

  /** The file is gone. */
  remove(path: string): void {
    const c = this.claims.get(path);
    if (!c) return;
    if (c.binding) this.endBinding(c, 'marker_removed');
    this.setWant(c, []);
    this.claims.delete(path);
    this.dirtyPaths.delete(path);
    this.out.states.delete(path);
    this.out.persist.set(path, null);
  }

  /** A bound process exited (startTime undefined) or its PID now has another start time. */
  processGone(pid: number, startTime: number | undefined): void {
    const path = this.held.get(pidRes(pid));
    const c = path === undefined ? undefined : this.claims.get(path);
    if (!c?.binding || c.binding.cand.pid !== pid) return;
    // A reader that saw an older binding of this PID (a liveness pass that yielded) must not end a newer one.
    if (startTime !== undefined && c.binding.cand.startTime === startTime) return;
    const cause: UnbindCause = startTime === undefined ? 'exited' : 'start_time_changed';
    this.endBinding(c, cause);
    c.stale = `mapped process ${cause === 'exited' ? 'exited' : 'was replaced (start time changed)'} (host PID ${pid})`;
    this.persistLater(c);
    this.touch(c);
  }

  // ---- the decision ---------------------------------------------------------------

  /** Decides everything affected since the last settle and returns what changed. */
  settle(): Settlement {
    const component = this.affected();
    this.decide(component);
    for (const p of this.dirtyPaths) {
      const c = this.claims.get(p);
      if (c && !component.has(c)) this.setView(c, this.standaloneView(c));
    }
    this.dirtyPaths.clear();
    this.dirtyRes.clear();
    const out = this.out;
    this.out = DecisionCore.emptySettlement();
    return out;
  }

  /** Waiting claims that share a resource, transitively, with something that changed. */
  private affected(): Set<Claim> {
    const seenRes = new Set<string>();
    const todo: string[] = [...this.dirtyRes];
    for (const p of this.dirtyPaths) {
      const c = this.claims.get(p);
      if (c) todo.push(...c.want);
    }
    const out = new Set<Claim>();
    while (todo.length > 0) {
      const r = todo.pop() as string;
      if (seenRes.has(r)) continue;
      seenRes.add(r);
      for (const p of this.waiting.get(r) ?? []) {
        const c = this.claims.get(p) as Claim;
        if (out.has(c)) continue;
        out.add(c);
        for (const r2 of c.want) if (!seenRes.has(r2)) todo.push(r2);
      }
    }
    return out;
  }

  /** Greedy in age order over one set of waiting claims (see rule 3). */
  private decide(set: Set<Claim>): void {
    const list = [...set].sort((a, b) => comparePriority(a.prio, b.prio));
    const reserved = new Map<string, string>(); // resource -> why it is taken
    for (let i = 0; i < list.length; ) {
      let j = i + 1;
      while (j < list.length && comparePriority((list[j] as Claim).prio, (list[i] as Claim).prio) === 0) j++;
      const group = list.slice(i, j);
      i = j;
      const eligible: Claim[] = [];
      for (const c of group) {
        const why = this.blocker(c, reserved);
        if (why === undefined) eligible.push(c);
        else this.setView(c, { state: 'conflict', reason: why, hostPid: undefined });
      }
      const users = new Map<string, Claim[]>();
      for (const c of eligible) for (const r of c.want) users.set(r, [...(users.get(r) ?? []), c]);
      for (const c of eligible) {
        const rivals = new Set<string>();
        for (const r of c.want) for (const o of users.get(r) ?? []) if (o !== c) rivals.add(o.path);
        if (rivals.size > 0) {
          const sameRes = c.want.filter(r => (users.get(r)?.length ?? 0) > 1).map(resName).join(' and ');
          this.setView(c, {
            state: 'conflict',
            reason: `claims of equal age compete for ${sameRes}: ${[...rivals].sort().join(', ')}; none maps until only one is left`,
            hostPid: undefined,
          });
        } else if (c.evalEpoch === this.epoch) {
          this.bind(c, (c.evaluation?.passing[0]) as Candidate, false);
        } else {
          this.out.recheck.push(c.path);
        }
      }
      for (const c of eligible) {
        for (const r of c.want) if (!this.held.has(r)) reserved.set(r, `an older claim for ${resName(r)} comes first: ${c.path}`);
      }
      // Ties reserve with their own reason.
      for (const [r, us] of users) {
        if (us.length > 1) reserved.set(r, `${resName(r)} is reserved by claims of equal age: ${us.map(u => u.path).sort().join(', ')}`);
      }
    }
  }

  /** Why a waiting claim cannot take its resources now, or undefined. */
  private blocker(c: Claim, reserved: Map<string, string>): string | undefined {
    for (const r of c.want) {
      const holder = this.held.get(r);
      if (holder !== undefined && holder !== c.path) {
        const h = this.claims.get(holder) as Claim;
        const b = h.binding as Binding;
        return r.startsWith('pid:')
          ? `host PID ${b.cand.pid} already holds ${h.role !== undefined ? `role ${roleName(h.role)}` : 'a role'} via ${holder}`
          : `role ${roleName(r.slice(5))} already held by live host PID ${b.cand.pid} via ${holder} (exclusive_roles)`;
      }
      const why = reserved.get(r);
      if (why !== undefined) return why;
    }
    return undefined;
  }

  /** State of a claim that waits for nothing specific. */
  private standaloneView(c: Claim): ClaimView {
    if (c.binding) {
      const pid = c.binding.cand.pid;
      return c.binding.suspended
        ? { state: 'rejected', reason: `${c.rejected ?? 'not yet re-read'}; role and host PID ${pid} stay reserved for the holder until the same version reads cleanly again`, hostPid: pid }
        : { state: 'mapped', reason: `mapped to host PID ${pid}`, hostPid: pid };
    }
    if (c.stale !== undefined) return { state: 'stale', reason: `${c.stale}; the marker must be rewritten to map again`, hostPid: undefined };
    if (c.rejected !== undefined) return { state: 'rejected', reason: c.rejected, hostPid: undefined };
    const ev = c.evaluation;
    if (ev === undefined) return { state: 'pending', reason: 'not yet evaluated', hostPid: undefined, retry: true };
    if (ev.passing.length > 1) {
      return { state: 'conflict', reason: `ambiguous: host PIDs ${ev.passing.map(p => p.pid).join(', ')} all match`, hostPid: undefined, retry: true };
    }
    const more = Math.max(0, ev.failures.length - MAX_FAILURES_SHOWN) + (ev.moreFailures ?? 0);
    const shown = ev.failures.slice(0, MAX_FAILURES_SHOWN).join('; ') + (more > 0 ? `; and ${more} more` : '');
    return { state: 'pending', reason: `no matching process: ${ev.failures.length === 0 ? 'none has its container PID' : shown}`, hostPid: undefined, retry: true };
  }

  // ---- bookkeeping ------------------------------------------------------------------

  private newClaim(path: string): Claim {
    const c: Claim = {
      path,
      file: undefined,
      key: undefined,
      role: undefined,
      rejected: undefined,
      prio: { rank: 1, ns: 0n },
      written: 0n,
      evaluation: undefined,
      evalEpoch: -1,
      binding: undefined,
      stale: undefined,
      want: [],
      view: { state: 'pending', reason: 'new', hostPid: undefined },
      unconfirmed: false,
    };
    this.claims.set(path, c);
    return c;
  }

  /** A new version (or none) of the file at this path: forget everything about the old one. */
  private setVersion(c: Claim, key: string | undefined, file: string | undefined): void {
    const hadRecord = c.key !== undefined;
    c.key = key;
    c.file = file;
    c.role = undefined;
    c.stale = undefined;
    c.evaluation = undefined;
    c.evalEpoch = -1;
    if (key === undefined && hadRecord) this.out.persist.set(c.path, null);
  }

  /** Marks a claim for re-decision, with the resources it wants now. */
  private touch(c: Claim): void {
    this.dirtyPaths.add(c.path);
    const ev = c.evaluation;
    const waits = c.binding === undefined && c.stale === undefined && c.rejected === undefined && c.key !== undefined && ev !== undefined && ev.passing.length === 1;
    const want: string[] = [];
    if (waits) {
      want.push(pidRes((ev.passing[0] as Candidate).pid));
      if (this.o.exclusiveRoles && c.role !== undefined) want.push(roleRes(c.role));
    }
    this.setWant(c, want);
  }

  private setWant(c: Claim, want: string[]): void {
    for (const r of c.want) {
      const s = this.waiting.get(r);
      s?.delete(c.path);
      if (s?.size === 0) this.waiting.delete(r);
      this.dirtyRes.add(r);
    }
    c.want = want;
    for (const r of want) {
      let s = this.waiting.get(r);
      if (!s) this.waiting.set(r, (s = new Set()));
      s.add(c.path);
      this.dirtyRes.add(r);
    }
  }

  private resources(c: Claim, cand: Candidate): string[] {
    const out = [pidRes(cand.pid)];
    if (this.o.exclusiveRoles && c.role !== undefined) out.push(roleRes(c.role));
    return out;
  }

  private hold(c: Claim): void {
    const b = c.binding as Binding;
    for (const r of this.resources(c, b.cand)) if (!this.held.has(r)) this.held.set(r, c.path);
  }

  private bind(c: Claim, cand: Candidate, restored: boolean): void {
    c.binding = { cand, suspended: false };
    c.evaluation = undefined; // a binding needs no verdict; keep no failure texts for thousands of them
    this.setWant(c, []);
    this.hold(c);
    this.out.bound.push({ path: c.path, cand, restored });
    this.persistLater(c);
    this.setView(c, this.standaloneView(c));
  }

  private endBinding(c: Claim, cause: UnbindCause): void {
    const b = c.binding;
    if (!b) return;
    c.binding = undefined;
    for (const r of this.resources(c, b.cand)) {
      if (this.held.get(r) === c.path) {
        this.held.delete(r);
        this.dirtyRes.add(r);
      }
    }
    // Reported for suspended bindings too: the caller removes whatever it published.
    this.out.unbound.push({ path: c.path, cand: b.cand, cause });
    this.persistLater(c);
  }

  private suspend(c: Claim): void {
    const b = c.binding as Binding;
    if (b.suspended) return;
    b.suspended = true;
    this.out.suspended.push({ path: c.path, cand: b.cand });
  }

  private resume(c: Claim, restored: boolean): void {
    const b = c.binding as Binding;
    b.suspended = false;
    if (restored) this.out.bound.push({ path: c.path, cand: b.cand, restored: true });
    else this.out.resumed.push({ path: c.path, cand: b.cand });
  }

  private setView(c: Claim, v: ClaimView): void {
    if (c.view.state === v.state && c.view.reason === v.reason && c.view.hostPid === v.hostPid) return;
    c.view = v;
    this.out.states.set(c.path, v);
  }

  private persistLater(c: Claim): void {
    const r = this.record(c);
    if (r) this.out.persist.set(c.path, r);
  }

  private record(c: Claim): PersistedClaim | undefined {
    if (c.key === undefined || c.role === undefined || c.file === undefined) return undefined;
    return {
      path: c.path,
      key: c.key,
      file: c.file,
      role: c.role,
      rank: c.prio.rank,
      age: c.prio.ns,
      written: c.written,
      bound: c.binding?.cand,
      stale: c.stale !== undefined ? true : undefined,
    };
  }
}
