// A local copy of the daemon's PID map, fed by its WatchMap stream, so that a
// mapped PID is answered without a second gRPC hop (the daemon hop costs more
// than the SPIRE hop itself). Safety rests on the same check the daemon
// makes: the PID's start time, read here from /proc/PID/stat, must equal the
// mapping's; anything else (unknown PID, different start time, stream not
// synced, daemon in another PID namespace) goes to the daemon's Attest.
// When the stream breaks the copy is dropped at once: a daemon that is down
// answers UNAVAILABLE through Attest, never stale data from here. A daemon
// that hangs keeps the stream open but stops sending: it sends at least a
// heartbeat every 500 ms, so a copy not heard from for `maxAgeMs` (the
// plugin's map_max_age) is not used; Attest then goes to the daemon, whose
// silence becomes a deadline error.
import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { parseNsLink, parseStatStartTime } from '../core/procparse.js';
import { readSmall } from '../proc-file.js';

interface Entry {
  startTime: string;
  selectors: readonly string[];
}

interface MapUpdate {
  map_version: string;
  full: boolean;
  upserts: { host_pid: number; start_time: string; selector_values: string[] }[];
  removed: number[];
  pid_namespace: string;
}

export type WatchFn = () => grpc.ClientReadableStream<MapUpdate>;

const RETRY_MS = 250;

function ownPidNs(): string | undefined {
  try {
    return String(parseNsLink(fs.readlinkSync('/proc/self/ns/pid')) ?? '');
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat as a decimal string, or undefined (any read error included). */
export function readStartTime(pid: number, procDir = '/proc'): string | undefined {
  let text: string | undefined;
  try {
    text = readSmall(`${procDir}/${pid}/stat`);
  } catch {
    return undefined;
  }
  const v = text === undefined ? undefined : parseStatStartTime(text);
  return v === undefined ? undefined : String(v);
}

export class MapCache {
  private entries = new Map<number, Entry>();
  private synced = false;
  private disabled = false;
  private closed = false;
  private call: grpc.ClientReadableStream<MapUpdate> | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** When the daemon was last heard from (any message, heartbeats included), on `now`'s clock. */
  private lastHeard = -Infinity;
  version = '0';

  constructor(
    private readonly watch: WatchFn,
    private readonly procDir = '/proc',
    /** Monotonic ms; injected for tests. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  start(): void {
    if (this.closed || this.disabled || this.call) return;
    let call: grpc.ClientReadableStream<MapUpdate>;
    try {
      call = this.watch();
    } catch {
      this.scheduleRetry();
      return;
    }
    this.call = call;
    call.on('data', (u: MapUpdate) => this.apply(u));
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
   * Selector values for `pid` if the copy has it, was heard from within
   * `maxAgeMs`, and the process is still the mapped one.
   */
  lookup(pid: number, maxAgeMs: number): readonly string[] | undefined {
    if (!this.synced || this.now() - this.lastHeard > maxAgeMs) return undefined;
    const e = this.entries.get(pid);
    if (!e) return undefined;
    return readStartTime(pid, this.procDir) === e.startTime ? e.selectors : undefined;
  }

  get ready(): boolean {
    return this.synced;
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.call;
    this.call = undefined;
    this.drop();
    c?.cancel();
  }

  private apply(u: MapUpdate): void {
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
      this.synced = true;
    } else if (!this.synced) {
      return;
    }
    for (const id of u.removed) this.entries.delete(id);
    for (const e of u.upserts) this.entries.set(e.host_pid, { startTime: e.start_time, selectors: Object.freeze([...e.selector_values]) });
    this.version = u.map_version;
  }

  private drop(): void {
    this.synced = false;
    this.entries = new Map();
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
