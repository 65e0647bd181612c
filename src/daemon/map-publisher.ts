// The published PID map: the live mappings, the changes since the last
// publish, and the immutable snapshot readers hold (core/pid-map.ts). The
// reconciler is its only writer.
import { PidMap, type Mapping } from '../core/pid-map.js';

const NO_CHANGES: ReadonlyMap<number, Mapping | null> = new Map();

export class MapPublisher {
  private readonly live = new Map<number, Mapping>();
  private changes = new Map<number, Mapping | null>();
  private snap: PidMap = PidMap.EMPTY;

  get size(): number {
    return this.live.size;
  }

  get(pid: number): Mapping | undefined {
    return this.live.get(pid);
  }

  values(): IterableIterator<Mapping> {
    return this.live.values();
  }

  set(m: Mapping): void {
    this.live.set(m.hostPid, m);
    this.changes.set(m.hostPid, m);
  }

  /** Removes the mapping of `pid` if it was made from `markerPath`; returns it. */
  remove(pid: number, markerPath: string): Mapping | undefined {
    const m = this.live.get(pid);
    if (!m || m.markerPath !== markerPath) return undefined;
    this.live.delete(pid);
    this.changes.set(pid, null);
    return m;
  }

  snapshot(): PidMap {
    return this.snap;
  }

  /** Publishes a new snapshot if anything changed; returns the changes (null: removed). */
  publish(): ReadonlyMap<number, Mapping | null> {
    if (this.changes.size === 0) return NO_CHANGES;
    const changes = this.changes;
    this.changes = new Map();
    this.snap = this.snap.next(changes, this.live);
    return changes;
  }
}
