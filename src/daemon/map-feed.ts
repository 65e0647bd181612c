// Fans what the reconciler publishes out to WatchMap streams: the whole
// state first (map, claims waiting for a process, busy scopes, how to find a
// process's scope), then a delta per change, and a heartbeat (an empty
// delta) every HEARTBEAT_MS, so that a plugin can tell a live daemon from a
// hung one (see the plugin's map_max_age).
//
// Every change gets the next sequence number, written to "<socket>.seq"
// before the message is sent (seq-file.ts): a plugin that reads a number its
// copy has not reached yet knows its copy lags, and waits for it.
//
// The whole state goes out in parts of FULL_PART entries, each once the last
// has left the stream's buffer, a turn later (11,000 mappings make 3 MB of
// protobuf: one message would block the daemon for a tenth of a second to
// encode, the plugin as long to decode);
// the last part is followed by what changed meanwhile, and only then is the
// copy complete.
//
// Backpressure: a subscriber whose stream does not take a message (write()
// returns false) gets nothing more until it drains; then it gets the whole
// state again, which replaces its copy. Memory per slow subscriber is
// bounded by the stream's own buffer, whatever the rate of changes.
import type { Mapping, PidMap } from '../core/pid-map.js';
import type { MapEntryMsg, MapUpdateMsg, PendingClaimsMsg } from '../pidmapper-wire.js';
import { ALL_SCOPES } from '../core/in-flight.js';
import { ALL_SLOT, SEQ_RECORDS, slotOf } from '../seq-file.js';
import type { Published } from './reconciler.js';

export type { MapEntryMsg, MapUpdateMsg } from '../pidmapper-wire.js';

/** The daemon sends something on every WatchMap stream at least this often. */
export const HEARTBEAT_MS = 500;
/** Entries per part of the whole state. */
export const FULL_PART = 500;

/**
 * Writes one message; false means "buffer full, wait for drain". `written`,
 * when given, is called once the message has left the stream's buffer
 * (serialized and handed to HTTP/2).
 */
export type FeedWrite = (u: MapUpdateMsg, written?: () => void) => boolean | void;

export interface FeedSubscription {
  /** The stream drained: resume with the whole state. */
  drained(): void;
  close(): void;
}

export interface FeedOptions {
  readonly pidNs: number | undefined;
  readonly layout: 'kubelet' | 'flat';
  readonly flatScope: string;
  /** This daemon run. */
  readonly instance: string;
  /** The current flight state, for full messages and the busy set of every message. */
  readonly flight: () => { pending: Map<string, number[]>; busy: string[] };
  /** Called with every new sequence number and the scope records (seq-file.ts) it touches, before subscribers hear of it. */
  readonly onSeq?: (instance: string, seq: bigint, slots: Iterable<number> | 'all') => void;
  readonly heartbeatMs?: number;
}

interface Subscriber {
  readonly write: FeedWrite;
  behind: boolean;
  /** Still receiving the parts of the whole state: deltas wait (the closing part covers them). */
  syncing: boolean;
  /** The next part, when the stream filled up in the middle of the whole state. */
  resume: (() => void) | undefined;
}

const entry = (m: Mapping): MapEntryMsg => ({ host_pid: m.hostPid, start_time: String(m.startTime), selector_values: m.selectors, scope: m.scope });
const pendingMsgs = (m: ReadonlyMap<string, number[]>): PendingClaimsMsg[] => [...m].map(([scope, container_pids]) => ({ scope, container_pids }));

export class MapFeed {
  private readonly subscribers = new Set<Subscriber>();
  private last: PidMap;
  private seq = 0n;
  /** Sequence number of the last change per scope record (seq-file.ts). */
  private readonly slotSeq = new Map<number, bigint>();
  private busy: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    initial: PidMap,
    private readonly o: FeedOptions,
  ) {
    this.last = initial;
  }

  /** Starts the heartbeats, and writes the current sequence number (the sequence file is open by now). */
  start(): void {
    this.o.onSeq?.(this.o.instance, this.seq, 'all');
    this.timer ??= setInterval(() => this.heartbeat(), this.o.heartbeatMs ?? HEARTBEAT_MS);
    this.timer.unref();
  }

  close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  /** Sends the whole current state, then every delta. */
  subscribe(write: FeedWrite): FeedSubscription {
    const sub: Subscriber = { write, behind: false, syncing: false, resume: undefined };
    this.subscribers.add(sub);
    this.sendFull(sub);
    return {
      drained: () => {
        if (!sub.behind || !this.subscribers.has(sub)) return;
        sub.behind = false;
        const resume = sub.resume;
        sub.resume = undefined;
        // In the middle of the whole state: go on with the next part (the closing
        // part covers what changed meanwhile); when the part in the stream's buffer
        // has not said so yet, it will. Behind on deltas: the whole state again.
        if (resume) resume();
        else if (!sub.syncing) this.sendFull(sub);
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

  /** Called with every update the reconciler publishes. */
  publish(u: Published): void {
    this.last = u.map;
    if (u.flight?.busy) this.busy = u.flight.busy;
    this.seq++;
    let slots: number[] | 'all';
    if (u.scopes.has(ALL_SCOPES)) {
      slots = 'all';
      for (let k = ALL_SLOT; k < SEQ_RECORDS; k++) this.slotSeq.set(k, this.seq);
    } else {
      slots = [...new Set([...u.scopes].map(slotOf))];
      for (const k of slots) this.slotSeq.set(k, this.seq);
    }
    this.o.onSeq?.(this.o.instance, this.seq, slots);
    if (this.subscribers.size === 0) return;
    const upserts: MapEntryMsg[] = [];
    const removed: number[] = [];
    for (const [pid, m] of u.changes) {
      if (m) upserts.push(entry(m));
      else removed.push(pid);
    }
    const touched = slots === 'all' ? [...this.slotSeq.keys()] : slots;
    this.broadcast(this.message(false, upserts, removed, u.flight ? pendingMsgs(u.flight.pending) : [], touched));
  }

  private heartbeat(): void {
    if (this.subscribers.size > 0) this.broadcast(this.message(false, [], [], [], []));
  }

  private broadcast(msg: MapUpdateMsg): void {
    for (const s of this.subscribers) this.send(s, msg);
  }

  /** The whole state, in parts (each once the last has left the stream's buffer), then what changed meanwhile. */
  private sendFull(sub: Subscriber): void {
    sub.syncing = true;
    const snap = this.last;
    const entries = [...snap.values()];
    const f = this.o.flight();
    this.busy = f.busy;
    let next = 0;
    // Closing: what changed since the snapshot, the flight state and sequence numbers of now.
    const closing = (): void => {
      if (!this.subscribers.has(sub)) return;
      if (sub.behind) {
        sub.resume = closing; // the stream is full: drained() goes on from here
        return;
      }
      const upserts: MapEntryMsg[] = [];
      const removed: number[] = [];
      if (this.last !== snap) {
        for (const m of this.last.values()) if (snap.get(m.hostPid) !== m) upserts.push(entry(m));
        for (const m of snap.values()) if (!this.last.get(m.hostPid)) removed.push(m.hostPid);
      }
      const now = this.o.flight();
      const pending = pendingMsgs(now.pending);
      for (const scope of f.pending.keys()) if (!now.pending.has(scope)) pending.push({ scope, container_pids: [] });
      sub.syncing = false;
      this.send(sub, this.message(false, upserts, removed, pending, [...this.slotSeq.keys()]));
    };
    const part = (): void => {
      if (!this.subscribers.has(sub)) return;
      if (sub.behind) {
        sub.resume = part;
        return;
      }
      const first = next === 0;
      const chunk = entries.slice(next, next + FULL_PART);
      next += FULL_PART;
      const more = next < entries.length;
      // The next part once this one has left the stream's buffer, a turn later: a
      // stream object-buffers 16 messages before it says it is full, and
      // serialized all it held in one go (a 60-130 ms stall at 11,000 mappings).
      this.send(sub, { ...this.message(first, chunk.map(entry), [], first ? pendingMsgs(f.pending) : [], []), more: true }, true, more ? () => setImmediate(part) : undefined);
      if (!more) closing();
    };
    part();
  }

  private send(sub: Subscriber, msg: MapUpdateMsg, syncPart = false, written?: () => void): void {
    if (sub.behind || (sub.syncing && !syncPart)) return;
    if (sub.write(msg, written) === false) sub.behind = true;
  }

  private message(full: boolean, upserts: MapEntryMsg[], removed: number[], pending: PendingClaimsMsg[], slots: number[]): MapUpdateMsg {
    return {
      map_version: String(this.last.version),
      full,
      upserts,
      removed,
      pid_namespace: String(this.o.pidNs ?? 0),
      instance: this.o.instance,
      seq: String(this.seq),
      pending,
      busy_scopes: this.busy,
      layout: this.o.layout,
      flat_scope: this.o.flatScope,
      slots: slots.map(slot => ({ slot, seq: String(this.slotSeq.get(slot) ?? 0n) })),
      more: false,
    };
  }
}
