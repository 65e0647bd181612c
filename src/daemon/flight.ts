// What may still be in flight, per scope (see core/in-flight.ts): scopes with
// marker events not processed yet, and claims waiting for a process. The
// reconciler keeps it up to date; the map feed sends its changes to plugins,
// and the daemon's own Attest reads it.
import type { FlightState } from '../core/in-flight.js';

export interface FlightChanges {
  /** Scopes whose waiting container PIDs changed, with the new list (empty: none). */
  readonly pending: Map<string, number[]>;
  /** The whole busy set, when it changed. */
  readonly busy: string[] | undefined;
  /** Scopes whose flight state changed (waiting claims, or busy or not). */
  readonly touched: Set<string>;
}

export class FlightTracker implements FlightState {
  readonly busy = new Set<string>();
  /** scope -> container PID -> number of waiting claims naming it. */
  readonly pending = new Map<string, Map<number, number>>();
  /** Scopes with queued events, and scopes whose events the running batch took. */
  private readonly queued = new Set<string>();
  private running = new Set<string>();
  private readonly pendingChanged = new Set<string>();
  /** Scopes that became busy or stopped being busy since the last takeChanges(). */
  private readonly busyFlipped = new Set<string>();

  /** An event for a path of `scope` was queued. */
  queuedEvent(scope: string): void {
    this.queued.add(scope);
    this.recompute();
  }

  /** A batch took the queued events of these scopes (those left over stay queued). */
  batchStarted(taken: Iterable<string>, stillQueued: Iterable<string>): void {
    this.running = new Set(taken);
    this.queued.clear();
    for (const s of stillQueued) this.queued.add(s);
    this.recompute();
  }

  batchEnded(): void {
    this.running.clear();
    this.recompute();
  }

  /** A claim of `scope` naming `cpid` starts (true) or stops (false) waiting for a process. */
  waiting(scope: string, cpid: number, on: boolean): void {
    let m = this.pending.get(scope);
    if (on) {
      if (!m) this.pending.set(scope, (m = new Map<number, number>()));
      const n = m.get(cpid) ?? 0;
      m.set(cpid, n + 1);
      if (n === 0) this.pendingChanged.add(scope);
    } else if (m) {
      const n = m.get(cpid) ?? 0;
      if (n <= 1) {
        m.delete(cpid);
        this.pendingChanged.add(scope);
        if (m.size === 0) this.pending.delete(scope);
      } else {
        m.set(cpid, n - 1);
      }
    }
  }

  /** Every scope's waiting container PIDs (a full feed message). */
  allPending(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [scope, m] of this.pending) out.set(scope, [...m.keys()]);
    return out;
  }

  /** What changed since the last call, or undefined. */
  takeChanges(): FlightChanges | undefined {
    if (this.pendingChanged.size === 0 && this.busyFlipped.size === 0) return undefined;
    const pending = new Map<string, number[]>();
    for (const scope of this.pendingChanged) pending.set(scope, [...(this.pending.get(scope)?.keys() ?? [])]);
    const touched = new Set([...this.pendingChanged, ...this.busyFlipped]);
    const busy = this.busyFlipped.size > 0 ? [...this.busy] : undefined;
    this.pendingChanged.clear();
    this.busyFlipped.clear();
    return { pending, busy, touched };
  }

  private recompute(): void {
    const next = new Set([...this.queued, ...this.running]);
    for (const s of this.busy) if (!next.has(s)) this.busyFlipped.add(s);
    for (const s of next) if (!this.busy.has(s)) this.busyFlipped.add(s);
    this.busy.clear();
    for (const s of next) this.busy.add(s);
  }
}
