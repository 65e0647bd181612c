// The I/O shell's bookkeeping of marker files: one record per admitted path
// (what was last read of it, its state as the decision core sees it), counts
// per state and per scope (the per-pod marker budget), the paths worth
// retrying, and the claims waiting for a process (flight.ts).
import type { ClaimState, ClaimView } from '../core/decision.js';
import type { Marker } from '../core/marker.js';
import type { FlightTracker } from './flight.js';
import type { ContextDir } from './layout.js';
import type { FileIdentity } from './secure-fs.js';

export type MarkerState = ClaimState;

export interface MarkerRecord {
  readonly path: string;
  readonly name: string;
  readonly dir: ContextDir;
  identity: FileIdentity | undefined;
  /** Content of the current version, when it parsed. */
  marker: Marker | undefined;
  key: string | undefined;
  state: MarkerState;
  reason: string;
  hostPid: number | undefined;
  /** When the record last changed state (ms epoch). */
  changedAt: number;
  /** The last attempt to reconcile it threw (retried). */
  error: string | undefined;
  /** Why the current version is rejected (logged and counted once per reason). */
  rejection: string | undefined;
  /** Retry from time to time (pending, ambiguous, failed). */
  retry: boolean;
  /** Container PID under which it is counted as waiting in the flight tracker. */
  waitingCpid: number | undefined;
}

/** One marker as the debug endpoint shows it (snake_case, like every JSON output). */
export interface MarkerView {
  readonly path: string;
  readonly state: MarkerState;
  readonly reason: string;
  readonly scope: string;
  readonly pod_uid: string | null;
  readonly host_pid: number | null;
  readonly marker: Marker | null;
  readonly inode: string | null;
  readonly changed_at: string | null;
}

const EMPTY: ReadonlySet<string> = new Set();

export class MarkerRecords {
  private readonly byPath = new Map<string, MarkerRecord>();
  private readonly perScope = new Map<string, number>();
  /** Context directory path -> paths of its records. */
  private readonly byDir = new Map<string, Set<string>>();
  readonly stateCounts: Record<MarkerState, number> = { mapped: 0, pending: 0, conflict: 0, rejected: 0, stale: 0 };
  /** Paths worth re-reading at every pending retry. */
  readonly retry = new Set<string>();

  constructor(
    private readonly flight: FlightTracker,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.byPath.size;
  }

  get(path: string): MarkerRecord | undefined {
    return this.byPath.get(path);
  }

  values(): IterableIterator<MarkerRecord> {
    return this.byPath.values();
  }

  /** Paths of the records of one context directory. */
  inDir(dirPath: string): ReadonlySet<string> {
    return this.byDir.get(dirPath) ?? EMPTY;
  }

  /** Paths of the records of every context directory below `prefix/`. */
  *under(prefix: string): IterableIterator<string> {
    for (const [d, paths] of this.byDir) if (d.startsWith(`${prefix}/`)) yield* paths;
  }

  /** Records of a scope (the per-pod marker budget counts them). */
  countIn(scope: string): number {
    return this.perScope.get(scope) ?? 0;
  }

  add(path: string, name: string, dir: ContextDir): MarkerRecord {
    const r: MarkerRecord = {
      path,
      name,
      dir,
      identity: undefined,
      marker: undefined,
      key: undefined,
      state: 'pending',
      reason: 'new',
      hostPid: undefined,
      changedAt: this.now(),
      error: undefined,
      rejection: undefined,
      retry: false,
      waitingCpid: undefined,
    };
    this.byPath.set(path, r);
    this.stateCounts.pending++;
    this.perScope.set(dir.scope, this.countIn(dir.scope) + 1);
    let d = this.byDir.get(dir.path);
    if (!d) this.byDir.set(dir.path, (d = new Set()));
    d.add(path);
    return r;
  }

  delete(path: string): MarkerRecord | undefined {
    const r = this.byPath.get(path);
    if (!r) return undefined;
    this.byPath.delete(path);
    const d = this.byDir.get(r.dir.path);
    d?.delete(path);
    if (d?.size === 0) this.byDir.delete(r.dir.path);
    this.stateCounts[r.state]--;
    const n = this.countIn(r.dir.scope) - 1;
    if (n > 0) this.perScope.set(r.dir.scope, n);
    else this.perScope.delete(r.dir.scope);
    this.retry.delete(path);
    this.setWaiting(r, undefined);
    return r;
  }

  /** The decision core changed a claim's state. */
  setView(r: MarkerRecord, v: ClaimView): void {
    if (r.state !== v.state) {
      this.stateCounts[r.state]--;
      this.stateCounts[v.state]++;
      r.changedAt = this.now();
    }
    r.state = v.state;
    r.reason = v.reason;
    r.hostPid = v.hostPid;
    r.retry = v.retry === true;
    this.updateRetry(r);
    // A claim waiting for a process may be answered soon: it is "in flight" for its container PID.
    this.setWaiting(r, v.state === 'pending' ? r.marker?.container_pid : undefined);
  }

  /** The record's content changed: keep its waiting container PID in step. */
  syncWaiting(r: MarkerRecord): void {
    this.setWaiting(r, r.state === 'pending' ? r.marker?.container_pid : undefined);
  }

  setError(r: MarkerRecord, error: string | undefined): void {
    r.error = error;
    if (error !== undefined) r.changedAt = this.now();
    this.updateRetry(r);
  }

  private updateRetry(r: MarkerRecord): void {
    if (r.error !== undefined || r.retry) this.retry.add(r.path);
    else this.retry.delete(r.path);
  }

  private setWaiting(r: MarkerRecord, cpid: number | undefined): void {
    if (r.waitingCpid === cpid) return;
    if (r.waitingCpid !== undefined) this.flight.waiting(r.dir.scope, r.waitingCpid, false);
    if (cpid !== undefined) this.flight.waiting(r.dir.scope, cpid, true);
    r.waitingCpid = cpid;
  }

  view(r: MarkerRecord): MarkerView {
    return {
      path: r.path,
      state: r.state,
      reason: r.error !== undefined ? `${r.reason} (last attempt failed: ${r.error}; retrying)` : r.reason,
      scope: r.dir.scope,
      pod_uid: r.dir.podUid ?? null,
      host_pid: r.hostPid ?? null,
      marker: r.marker ?? null,
      inode: r.identity ? String(r.identity.ino) : null,
      changed_at: new Date(r.changedAt).toISOString(),
    };
  }
}
