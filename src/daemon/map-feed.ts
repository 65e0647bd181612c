// Fans the reconciler's published PID maps out to WatchMap streams: the whole
// map first, then a delta per version (mappings are immutable objects, so an
// entry changed iff its object identity changed).
import type { Mapping, PidMap } from '../core/pid-map.js';

export interface MapEntryMsg {
  host_pid: number;
  start_time: string;
  selector_values: readonly string[];
}

export interface MapUpdateMsg {
  map_version: string;
  full: boolean;
  upserts: MapEntryMsg[];
  removed: number[];
  pid_namespace: string;
}

const entry = (m: Mapping): MapEntryMsg => ({ host_pid: m.hostPid, start_time: String(m.startTime), selector_values: m.selectors });

export class MapFeed {
  private readonly subscribers = new Set<(u: MapUpdateMsg) => void>();
  private last: PidMap;

  constructor(
    initial: PidMap,
    private readonly pidNs: number | undefined,
  ) {
    this.last = initial;
  }

  /** Sends the whole current map, then every delta; returns an unsubscribe function. */
  subscribe(send: (u: MapUpdateMsg) => void): () => void {
    const full = this.message(this.last, [...this.last.values()].map(entry), [], true);
    send(full);
    this.subscribers.add(send);
    return () => this.subscribers.delete(send);
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Called with every newly published map and the host PIDs that changed in it. */
  publish(next: PidMap, changed: Iterable<number>): void {
    this.last = next;
    if (this.subscribers.size === 0) return;
    const upserts: MapEntryMsg[] = [];
    const removed: number[] = [];
    for (const pid of changed) {
      const m = next.get(pid);
      if (m) upserts.push(entry(m));
      else removed.push(pid);
    }
    const msg = this.message(next, upserts, removed, false);
    for (const s of this.subscribers) s(msg);
  }

  private message(map: PidMap, upserts: MapEntryMsg[], removed: number[], full: boolean): MapUpdateMsg {
    return { map_version: String(map.version), full, upserts, removed, pid_namespace: String(this.pidNs ?? 0) };
  }
}
