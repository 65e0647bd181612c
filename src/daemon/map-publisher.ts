// The published PID map: the live mappings, the changes since the last
// publish, and the immutable snapshot readers hold (core/pid-map.ts). The
// reconciler is its only writer.
import { PidMap, type Mapping } from '../core/pid-map.js';

export interface MapChanges {
  /** Host PIDs whose mapping changed (null: removed). */
  readonly changes: ReadonlyMap<number, Mapping | null>;
  /** Scopes of the mappings added or removed. */
  readonly scopes: ReadonlySet<string>;
}

const NO_CHANGES: MapChanges = { changes: new Map(), scopes: new Set() };

export class MapPublisher {
  private readonly live = new Map<number, Mapping>();
  private changes = new Map<number, Mapping | null>();
  private scopes = new Set<string>();
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
    this.scopes.add(m.scope);
  }

  /** Removes the mapping of `pid` if it was made from `markerPath`; returns it. */
  remove(pid: number, markerPath: string): Mapping | undefined {
    const m = this.live.get(pid);
    if (!m || m.markerPath !== markerPath) return undefined;
    this.live.delete(pid);
    this.changes.set(pid, null);
    this.scopes.add(m.scope);
    return m;
  }

  snapshot(): PidMap {
    return this.snap;
  }

  /** Publishes a new snapshot if anything changed; returns what changed. */
  publish(): MapChanges {
    if (this.changes.size === 0) return NO_CHANGES;
    const changes = this.changes;
    const scopes = this.scopes;
    this.changes = new Map();
    this.scopes = new Set();
    this.snap = this.snap.next(changes, this.live);
    return { changes, scopes };
  }
}
