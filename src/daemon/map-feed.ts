// Fans the reconciler's published PID maps out to WatchMap streams: the whole
// map first, then a delta per version (mappings are immutable objects, so an
// entry changed iff its object identity changed), and a heartbeat (an empty
// delta) every HEARTBEAT_MS, so that a plugin can tell a live daemon from a
// hung one (see the plugin's map_max_age).
//
// Backpressure: a subscriber whose stream does not take a message (write()
// returns false) gets nothing more until it drains; then it gets the whole
// current map again, which replaces its copy. Memory per slow subscriber is
// bounded by the stream's own buffer, whatever the rate of changes.
import type { Mapping, PidMap } from '../core/pid-map.js';

/** The daemon sends something on every WatchMap stream at least this often. */
export const HEARTBEAT_MS = 500;

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

/** Writes one message; false means "buffer full, wait for drain". */
export type FeedWrite = (u: MapUpdateMsg) => boolean | void;

export interface FeedSubscription {
  /** The stream drained: resume with the whole map. */
  drained(): void;
  close(): void;
}

interface Subscriber {
  readonly write: FeedWrite;
  behind: boolean;
}

const entry = (m: Mapping): MapEntryMsg => ({ host_pid: m.hostPid, start_time: String(m.startTime), selector_values: m.selectors });

export class MapFeed {
  private readonly subscribers = new Set<Subscriber>();
  private last: PidMap;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    initial: PidMap,
    private readonly pidNs: number | undefined,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {
    this.last = initial;
  }

  start(): void {
    this.timer ??= setInterval(() => this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
  }

  close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  /** Sends the whole current map, then every delta. */
  subscribe(write: FeedWrite): FeedSubscription {
    const sub: Subscriber = { write, behind: false };
    this.subscribers.add(sub);
    this.sendFull(sub);
    return {
      drained: () => {
        if (!sub.behind || !this.subscribers.has(sub)) return;
        sub.behind = false;
        this.sendFull(sub);
      },
      close: () => this.subscribers.delete(sub),
    };
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Subscribers waiting for their stream to drain. */
  get behind(): number {
    let n = 0;
    for (const s of this.subscribers) if (s.behind) n++;
    return n;
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
    this.broadcast(this.message(next, upserts, removed, false));
  }

  private heartbeat(): void {
    if (this.subscribers.size > 0) this.broadcast(this.message(this.last, [], [], false));
  }

  private broadcast(msg: MapUpdateMsg): void {
    for (const s of this.subscribers) this.send(s, msg);
  }

  private sendFull(sub: Subscriber): void {
    this.send(sub, this.message(this.last, [...this.last.values()].map(entry), [], true));
  }

  private send(sub: Subscriber, msg: MapUpdateMsg): void {
    if (sub.behind) return;
    if (sub.write(msg) === false) sub.behind = true;
  }

  private message(map: PidMap, upserts: MapEntryMsg[], removed: number[], full: boolean): MapUpdateMsg {
    return { map_version: String(map.version), full, upserts, removed, pid_namespace: String(this.pidNs ?? 0) };
  }
}
