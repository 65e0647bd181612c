// A local copy of the daemon's state, fed by its WatchMap stream: the PID map,
// the claims waiting for a process and the pods with unprocessed marker
// events. It answers most Attest calls without a second gRPC hop:
//  - a mapped PID, after the same start-time check the daemon makes (field 22
//    of /proc/PID/stat must equal the mapping's);
//  - an unknown PID, with no selectors, when nothing that could map it is in
//    flight: no unprocessed event of its pod, no claim of its pod naming its
//    container PID (core/in-flight.ts, the daemon's own rule).
// Everything else (a claim in flight for it, a start time that differs) goes
// to the daemon's Attest.
//
// Freshness, three ways:
//  - the copy is used only when it has reached the daemon's latest sequence
//    number, read from "<socket>.seq" (seq-file.ts) on every lookup; a copy
//    that lags waits for the stream to catch up (normally a fraction of a
//    millisecond), so no answer comes from a copy older than the daemon's state
//    at the time of the call;
//  - a daemon that hangs keeps the stream open but stops sending: it sends at
//    least a heartbeat every 500 ms, so a copy not heard from for `maxAgeMs`
//    (the plugin's map_max_age) is not used; Attest then goes to the daemon,
//    whose silence becomes a deadline error;
//  - when the stream breaks the copy is dropped at once: a daemon that is down
//    answers UNAVAILABLE through Attest, never stale data from here.
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { mayBeInFlight, scopeOfProcess, type FlightState } from '../core/in-flight.js';
import { parseCgroup, parseNSpid, parseNsLink } from '../core/procparse.js';
import type { MapUpdateMsg } from '../pidmapper-wire.js';
import { readSmall } from '../proc-file.js';
import { StatReader } from './stat-reader.js';
import { ALL_SLOT, slotOf, type SeqReader } from '../seq-file.js';

interface Entry {
  startTime: string;
  selectors: readonly string[];
  scope: string;
}

export type WatchFn = () => grpc.ClientReadableStream<MapUpdateMsg>;

/** What the copy can say about a PID. */
export type Verdict =
  | { readonly kind: 'answer'; readonly values: readonly string[] }
  /** The copy is behind the daemon's state (sequence `seq`): wait for it, then look again. */
  | { readonly kind: 'lagging'; readonly seq: bigint }
  /** Only the daemon can answer. */
  | { readonly kind: 'ask' };

export const NO_SELECTORS: readonly string[] = Object.freeze([]);
const ASK: Verdict = Object.freeze({ kind: 'ask' });
const EMPTY: Verdict = Object.freeze({ kind: 'answer', values: NO_SELECTORS });

const RETRY_MS = 250;

function ownPidNs(): string | undefined {
  try {
    return String(parseNsLink(fs.readlinkSync('/proc/self/ns/pid')) ?? '');
  } catch {
    return undefined;
  }
}

function read(file: string): string | undefined {
  try {
    return readSmall(file);
  } catch {
    return undefined;
  }
}

export class MapCache implements FlightState {
  private entries = new Map<number, Entry>();
  readonly pending = new Map<string, Set<number>>();
  readonly busy = new Set<string>();
  private layout = 'kubelet';
  private flatScope = '';
  private instance = '';
  private seq = -1n;
  /** Sequence number of the last change the copy has per scope record (seq-file.ts). */
  private readonly slotSeq = new Map<number, bigint>();
  private synced = false;
  /** Receiving the parts of the whole state (not usable until the last one). */
  private filling = false;
  private disabled = false;
  private closed = false;
  private call: grpc.ClientReadableStream<MapUpdateMsg> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private waiters: { seq: bigint; done: () => void }[] = [];
  /** When the daemon was last heard from (any message, heartbeats included), on `now`'s clock. */
  private lastHeard = -Infinity;
  /** When the copy being received began: the stream's opening for the first, the first part for later ones. */
  private fillBegan = 0;
  /** Wholes received on the current stream. */
  private fills = 0;
  private readonly stat: StatReader;
  version = '0';

  constructor(
    private readonly watch: WatchFn,
    /** The daemon's sequence file. */
    private readonly seqFile: Pick<SeqReader, 'read' | 'reopen'>,
    private readonly procDir = '/proc',
    /** Monotonic ms; injected for tests. */
    private readonly now: () => number = () => performance.now(),
    /**
     * Told each time the copy becomes complete: how many mappings, and how long
     * it took (from the stream's opening; from the first part when the daemon
     * sent the whole state again on the same stream, `again`).
     */
    private readonly onSynced?: (mappings: number, ms: number, again: boolean) => void,
  ) {
    this.stat = new StatReader(procDir);
  }

  start(): void {
    if (this.closed || this.disabled || this.call) return;
    let call: grpc.ClientReadableStream<MapUpdateMsg>;
    try {
      call = this.watch();
    } catch {
      this.scheduleRetry();
      return;
    }
    this.call = call;
    this.fillBegan = this.now();
    this.fills = 0;
    call.on('data', (u: MapUpdateMsg) => this.apply(u));
    const lost = (): void => {
      if (this.call !== call) return;
      this.call = undefined;
      this.drop();
      this.scheduleRetry();
    };
    call.on('error', lost);
    call.on('end', lost);
    call.on('close', lost);
  }

  /**
   * What the copy says about `pid`: its selectors (none for a PID nothing can
   * map), "lagging" when the daemon knows more than the copy, or "ask".
   */
  lookup(pid: number, maxAgeMs: number): Verdict {
    if (!this.synced || this.now() - this.lastHeard > maxAgeMs) return ASK;
    const d = this.seqFile.read(0);
    if (d === undefined || d.instance !== this.instance) {
      this.seqFile.reopen(); // a restarted daemon recreates the file
      return ASK;
    }
    const e = this.entries.get(pid);
    let scope: string | undefined;
    let scopeRead = false;
    const scopeOfPid = (): string | undefined => {
      if (!scopeRead) {
        scopeRead = true;
        scope = e?.scope ?? scopeOfProcess(this.layout, this.flatScope, () => {
          const t = read(`${this.procDir}/${pid}/cgroup`);
          return t === undefined ? undefined : parseCgroup(t).podUid;
        });
      }
      return scope;
    };
    if (d.seq > this.seq) {
      // The daemon changed something the copy has not seen yet. Was it in this
      // PID's scope? (Only then must the answer wait; other pods' churn must not
      // hold this one up.) A PID of no scope depends on changes to all scopes only.
      const s = scopeOfPid();
      const k = s === undefined ? ALL_SLOT : slotOf(s);
      const r = this.seqFile.read(k);
      if (r === undefined || r.instance !== this.instance) return ASK;
      if (r.seq > (this.slotSeq.get(k) ?? 0n)) return { kind: 'lagging', seq: r.seq };
    }
    if (e) return this.stat.startTime(pid) === e.startTime ? { kind: 'answer', values: e.selectors } : ASK;
    const inFlight = mayBeInFlight(this, scopeOfPid, () => {
      const t = read(`${this.procDir}/${pid}/status`);
      const ns = t === undefined ? undefined : parseNSpid(t);
      return ns?.[ns.length - 1];
    });
    return inFlight ? ASK : EMPTY;
  }

  /** Resolves true once the copy has reached sequence `seq`, false after `ms`. */
  waitFor(seq: bigint, ms: number): Promise<boolean> {
    if (this.seq >= seq) return Promise.resolve(true);
    return new Promise(resolve => {
      const w = {
        seq,
        done: (): void => {
          clearTimeout(t);
          resolve(true);
        },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter(x => x !== w);
        resolve(false);
      }, ms);
      this.waiters.push(w);
    });
  }

  get ready(): boolean {
    return this.synced;
  }

  close(): void {
    this.closed = true;
    this.stat.close();
    if (this.retry) clearTimeout(this.retry);
    const c = this.call;
    this.call = undefined;
    this.drop();
    c?.cancel();
  }

  private apply(u: MapUpdateMsg): void {
    this.lastHeard = this.now();
    if (u.full) {
      const own = ownPidNs();
      if (own === undefined || u.pid_namespace !== own) {
        // PIDs in the copy would name other processes here: never use it.
        this.disabled = true;
        this.close();
        return;
      }
      this.entries = new Map();
      this.pending.clear();
      this.slotSeq.clear();
      this.layout = u.layout;
      this.flatScope = u.flat_scope;
      this.instance = u.instance;
      this.synced = false;
      this.filling = true;
      if (this.fills > 0) this.fillBegan = this.now(); // sent again on the same stream (it fell behind)
    } else if (!this.synced && !this.filling) {
      return;
    }
    for (const id of u.removed) this.entries.delete(id);
    for (const e of u.upserts) this.entries.set(e.host_pid, { startTime: e.start_time, selectors: Object.freeze([...e.selector_values]), scope: e.scope });
    for (const p of u.pending) {
      if (p.container_pids.length === 0) this.pending.delete(p.scope);
      else this.pending.set(p.scope, new Set(p.container_pids));
    }
    this.busy.clear();
    for (const s of u.busy_scopes) this.busy.add(s);
    this.version = u.map_version;
    this.seq = BigInt(u.seq || '0');
    for (const sl of u.slots) this.slotSeq.set(sl.slot, BigInt(sl.seq));
    if (this.filling && !u.more) {
      this.filling = false;
      this.synced = true;
      this.onSynced?.(this.entries.size, this.now() - this.fillBegan, this.fills++ > 0);
    }
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter(w => w.seq <= this.seq);
      this.waiters = this.waiters.filter(w => w.seq > this.seq);
      for (const w of ready) w.done();
    }
  }

  private drop(): void {
    this.synced = false;
    this.filling = false;
    this.slotSeq.clear();
    this.entries = new Map();
    this.pending.clear();
    this.busy.clear();
    this.seq = -1n;
  }

  private scheduleRetry(): void {
    if (this.closed || this.disabled || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.start();
    }, RETRY_MS);
    this.retry.unref();
  }
}
