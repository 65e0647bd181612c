// /debug/explain/{pid}: why a PID gets the selectors it gets, or none. Reads
// /proc for this one PID and applies the rules to every marker naming its
// container PID; never used on the Attest path.
import type { Marker } from '../core/marker.js';
import type { PidMap } from '../core/pid-map.js';
import type { ContextDir } from './layout.js';
import type { Procfs } from './procfs.js';
import { checkCandidate, type RuleContext } from './rules.js';
import type { FileIdentity } from './secure-fs.js';

export interface ExplainClaim {
  readonly path: string;
  readonly name: string;
  readonly dir: ContextDir;
  readonly marker: Marker | undefined;
  readonly identity: FileIdentity | undefined;
  readonly key: string | undefined;
  readonly state: string;
  readonly reason: string;
}

export interface ExplainSource {
  readonly procfs: Procfs;
  readonly snapshot: PidMap;
  readonly rules: RuleContext;
  claims(): Iterable<ExplainClaim>;
  writtenAt(path: string, key: string, ctimeNs: bigint): bigint;
}

export function explainPid(pid: number, src: ExplainSource): Record<string, unknown> {
  const pf = src.procfs;
  const startTime = pf.readStartTime(pid);
  const nspid = pf.readNSpid(pid);
  const cg = pf.readCgroup(pid);
  const m = src.snapshot.get(pid);
  const out: Record<string, unknown> = {
    pid,
    exists: startTime !== undefined,
    start_time: startTime ?? null,
    nspid: nspid ?? null,
    container_pid: nspid?.[nspid.length - 1] ?? null,
    pid_namespace: pf.readPidNs(pid) ?? null,
    pod_uid: cg?.podUid ?? null,
    container_id: cg?.containerId ?? null,
    map_version: src.snapshot.version,
  };
  if (m) {
    const ok = startTime === m.startTime;
    out['mapped'] = { marker_path: m.markerPath, start_time: m.startTime, start_time_matches: ok };
    out['selectors'] = ok ? m.selectors : [];
    out['verdict'] = ok
      ? `mapped through ${m.markerPath}`
      : 'was mapped, but the start time changed (PID reused or exited): Attest answers nothing and evicts';
    return out;
  }
  out['mapped'] = null;
  out['selectors'] = [];
  const cpid = nspid?.[nspid.length - 1];
  const related: Record<string, unknown>[] = [];
  for (const r of src.claims()) {
    if (r.marker === undefined || r.marker.container_pid !== cpid) continue;
    let check: string | undefined = 'not evaluated';
    if (startTime !== undefined && nspid !== undefined && r.identity !== undefined && r.key !== undefined) {
      const facts = { dir: r.dir, name: r.name, marker: r.marker, identity: r.identity, writtenNs: src.writtenAt(r.path, r.key, r.identity.ctimeNs) };
      check = checkCandidate(src.rules, facts, { pid, startTime, nspid }) ?? 'passes every rule';
    }
    related.push({ marker_path: r.path, state: r.state, reason: r.reason, this_pid: check });
  }
  out['markers_naming_its_container_pid'] = related;
  out['verdict'] =
    startTime === undefined
      ? 'no such process'
      : related.length === 0
        ? `no marker names container PID ${cpid ?? '?'}: unknown processes get no selectors`
        : 'markers name its container PID, but none is mapped to it (see each marker)';
  return out;
}
