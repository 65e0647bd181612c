// The mapping rules (README "How a marker becomes a mapping"), applied to one
// claim: which processes pass, and why each other one fails. Reads /proc for
// the candidates only; the decision around the verdict is core/decision.ts.
//
// Why the verdict can be trusted: the marker's content is attacker input,
// so it is only ever a claim. A claim is accepted for host PID H only when
// data the kernel controls agrees: H's innermost PID (NSpid in
// /proc/H/status), H's pod (the cgroup path in /proc/H/cgroup, which the
// workload cannot change) matching the pod UID in the marker's directory
// path (kubelet controls it), H's view of the very same file (device + inode
// through /proc/H/root, no symlink followed), and H's start time (field 22 of
// /proc/H/stat), which also pins a binding to this process and no later one
// with the same PID number. A process that started after the marker version
// was written cannot be its writer.
import { MAX_FAILURES_SHOWN, type Candidate, type Evaluation } from '../core/decision.js';
import type { Marker } from '../core/marker.js';
import type { ContextDir } from './layout.js';
import { TICK_NS, type Procfs } from './procfs.js';
import type { ProcTable, Candidate as ProcCandidate } from './proc-table.js';
import { statThroughRoot, type FileIdentity } from './secure-fs.js';

export interface RuleContext {
  readonly procfs: Procfs;
  readonly table: ProcTable;
  readonly containerContextDir: string;
  readonly startSlackNs: bigint;
}

export interface ClaimFacts {
  readonly dir: ContextDir;
  readonly name: string;
  readonly marker: Marker;
  readonly identity: FileIdentity;
  /** ctime (ns) of this version when first observed (core.writtenAt). */
  readonly writtenNs: bigint;
}

/** Rules 2-5 for one candidate; undefined when it passes. */
export function checkCandidate(ctx: RuleContext, f: ClaimFacts, cand: ProcCandidate): string | undefined {
  const pf = ctx.procfs;
  const m = f.marker;
  if (f.dir.podUid !== undefined) {
    const cg = pf.readCgroup(cand.pid);
    if (cg?.podUid !== f.dir.podUid) return `pod ${cg?.podUid ?? 'none'} is not the marker's pod ${f.dir.podUid}`;
  }
  if (m.process_start_time !== undefined && m.process_start_time !== cand.startTime) {
    return `start time ${cand.startTime} differs from the marker's ${m.process_start_time}`;
  }
  if (m.pid_namespace !== undefined) {
    const ns = pf.readPidNs(cand.pid);
    if (ns !== m.pid_namespace) return `PID namespace ${ns ?? 'unknown'} differs from the marker's ${m.pid_namespace}`;
  }
  // Start times are whole ticks (10 ms) of CLOCK_BOOTTIME, rounded down: the
  // earliest moment the process may have started. Compared with the version's
  // first-observed ctime on the same (wall) clock, to the nanosecond.
  const startedNs = pf.bootTimeNs() + BigInt(cand.startTime) * TICK_NS;
  if (startedNs > f.writtenNs + ctx.startSlackNs) {
    const late = Number(startedNs - f.writtenNs) / 1e6;
    return `process started ${late.toFixed(1)} ms after the marker was written (cannot be its writer)`;
  }
  const seen = statThroughRoot(pf.rootOf(cand.pid), ctx.containerContextDir, f.name);
  if ('problem' in seen) return seen.problem;
  if (seen.dev !== f.identity.dev || seen.ino !== f.identity.ino) return 'sees a different file at the marker path';
  return undefined;
}

/** Every process whose innermost PID is the marker's container PID, checked against the rules. */
export function evaluateClaim(ctx: RuleContext, f: ClaimFacts): Evaluation {
  const failures: string[] = [];
  let moreFailures = 0;
  // Only the first few failures become text (a reason names MAX_FAILURES_SHOWN):
  // container PIDs repeat across pods, and thousands of claims would each keep
  // dozens of "other pod" texts otherwise.
  const fail = (text: () => string): void => {
    if (failures.length < MAX_FAILURES_SHOWN) failures.push(text());
    else moreFailures++;
  };
  const passing: Candidate[] = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    failures.length = 0;
    moreFailures = 0;
    passing.length = 0;
    const otherPods: [number, string | null][] = [];
    const cands = ctx.table.candidates(f.marker.container_pid, f.dir.podUid, otherPods);
    for (const cand of cands) {
      const why = checkCandidate(ctx, f, cand);
      if (why === undefined) passing.push({ pid: cand.pid, startTime: cand.startTime });
      else fail(() => `host PID ${cand.pid}: ${why}`);
    }
    for (const [pid, pod] of otherPods) fail(() => `host PID ${pid}: pod ${pod ?? 'none'} is not the marker's pod ${f.dir.podUid ?? ''}`);
    // Nothing found after a probe-only refresh: list /proc once and look again
    // (a process can be allocated a PID a moment before it shows in /proc).
    if (passing.length > 0 || !ctx.table.lastWasProbe) break;
    ctx.table.refreshFull();
  }
  if (failures.length === 0 && passing.length === 0) failures.push(`no process with container PID ${f.marker.container_pid}`);
  return moreFailures > 0 ? { passing, failures, moreFailures } : { passing, failures };
}
