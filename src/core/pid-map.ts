// Immutable, versioned snapshot of the PID map. The reconciler is its only
// writer: it publishes a new PidMap after every batch that changed anything;
// readers (Attest, debug endpoint, map feed) hold whichever snapshot they got.
//
// A snapshot is a shared, never-mutated `base` map plus a small `overlay` of
// the changes since (null = removed). Publishing copies only the overlay; once
// the overlay grows past ~sqrt(2n) entries it is folded into a new base.
// So a batch that maps one marker on a node with 10,000 mappings costs a small
// copy, not a copy of 10,000 entries (and not 10,000 entries of garbage).
import type { Marker } from './marker.js';

export interface Mapping {
  readonly hostPid: number;
  /** Field 22 of /proc/H/stat when mapped; Attest re-checks it. */
  readonly startTime: number;
  readonly pidNs: number | undefined;
  readonly containerPid: number;
  readonly podUid: string | undefined;
  readonly containerId: string | undefined;
  readonly marker: Marker;
  readonly markerPath: string;
  readonly scope: string;
  readonly mappedAt: number;
  readonly selectors: readonly string[];
}

const MIN_OVERLAY = 64;

export class PidMap {
  static readonly EMPTY = new PidMap(0, new Map());

  readonly size: number;

  constructor(
    readonly version: number,
    private readonly base: ReadonlyMap<number, Mapping>,
    private readonly overlay: ReadonlyMap<number, Mapping | null> = new Map(),
  ) {
    let size = base.size;
    for (const [pid, m] of overlay) {
      const inBase = base.has(pid);
      if (m === null && inBase) size--;
      else if (m !== null && !inBase) size++;
    }
    this.size = size;
  }

  get(hostPid: number): Mapping | undefined {
    const o = this.overlay.get(hostPid);
    if (o !== undefined) return o ?? undefined;
    return this.base.get(hostPid);
  }

  *values(): IterableIterator<Mapping> {
    for (const [pid, m] of this.base) if (!this.overlay.has(pid)) yield m;
    for (const m of this.overlay.values()) if (m !== null) yield m;
  }

  /**
   * The next snapshot: this one with `changes` applied (null = removed).
   * `current` is the writer's full live map, used when the overlay is folded.
   */
  next(changes: ReadonlyMap<number, Mapping | null>, current: ReadonlyMap<number, Mapping>): PidMap {
    // Fold when the overlay outgrows ~sqrt(2n): balances copying the overlay
    // on every publish against copying the whole base on a fold.
    if (this.overlay.size + changes.size > Math.max(MIN_OVERLAY, Math.ceil(Math.sqrt(2 * this.base.size)))) {
      return new PidMap(this.version + 1, new Map(current));
    }
    const overlay = new Map(this.overlay);
    for (const [pid, m] of changes) overlay.set(pid, m);
    return new PidMap(this.version + 1, this.base, overlay);
  }
}
