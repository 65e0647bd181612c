// Which mapped PIDs a liveness pass must read. A mapping ends when its
// process exits or its PID names another process; reading every mapping's
// /proc/PID/stat every pass cost ~10 µs each (110 ms of the event loop every
// 2 s at 11,000 mappings, a third of the daemon's CPU under churn).
//
// PIDs are allocated cyclically from ns_last_pid: if it moved from L0 (read
// at the start of the previous pass) to L1 (read at the start of this one),
// every process created in between has a PID in (L0, L1]. So a mapped PID
// that is still listed in /proc and not in that range still names the process
// the previous pass saw; only PIDs missing from the listing (exited), in the
// range (maybe reused), or bound since the previous pass took its list (their
// start time may have been read before it) need their start time read.
//
// Everything is read when that reasoning might not hold: no previous pass to
// go from; a counter or the listing unreadable, or describing another PID
// namespace than the listing; pid_max changed; more tasks created since the
// previous pass (/proc/stat "processes", every fork and thread on the node:
// never fewer than the PIDs allocated) than a quarter of pid_max, so that the
// counter cannot have gone round; passes far apart; and at every full resync.
// (Root can still place a process on a chosen PID without moving the counter,
// with clone3's set_tid or by writing ns_last_pid back: that is outside what
// a pod can do.)
//
// This only decides when a mapping is *removed*: every Attest still compares
// the process's start time with the mapping's before it answers.

import * as fs from 'node:fs';
import { parseNsLink } from '../core/procparse.js';
import type { Procfs } from './procfs.js';

/** Passes further apart than this read everything. */
export const MAX_GAP_MS = 30_000;

export interface PassStart {
  /** When the pass started, monotonic ms. */
  readonly now: number;
  /** ns_last_pid, read before the listing. */
  readonly lastPid: number | undefined;
  readonly pidMax: number | undefined;
  /** Tasks created since boot (/proc/stat "processes"), read with lastPid. */
  readonly forks: number | undefined;
  /** The PIDs listed in /proc after lastPid was read; undefined when not listed. */
  readonly live: ReadonlySet<number> | undefined;
  /** Do the counters describe the PID namespace of the listing (the daemon's own)? */
  readonly sameNamespace: boolean;
  /** Read everything (a full resync). */
  readonly full: boolean;
}

export interface PassPlan {
  readonly full: boolean;
  /** Must this mapped PID's start time be read? */
  mustRead(pid: number): boolean;
}

const ALL: PassPlan = { full: true, mustRead: () => true };

const mod = (x: number, m: number): number => ((x % m) + m) % m;

export class LivenessPlanner {
  private prev: { lastPid: number; pidMax: number; forks: number; at: number } | undefined;

  plan(s: PassStart): PassPlan {
    const prev = this.prev;
    const { lastPid, pidMax, forks, live } = s;
    if (s.full || !s.sameNamespace || !prev || lastPid === undefined || pidMax === undefined || forks === undefined || !live) return ALL;
    if (pidMax !== prev.pidMax || lastPid >= pidMax) return ALL;
    const created = forks - prev.forks;
    if (created < 0 || created > pidMax / 4 || s.now - prev.at > MAX_GAP_MS || s.now < prev.at) return ALL;
    const span = mod(lastPid - prev.lastPid, pidMax);
    const from = prev.lastPid;
    return {
      full: false,
      mustRead: pid => {
        if (!live.has(pid)) return true; // exited (or not ours to see): read to be sure
        const d = mod(pid - from, pidMax);
        return d >= 1 && d <= span; // allocated since the previous pass: maybe another process now
      },
    };
  }

  /** The pass that began with `s` went through every mapping: the next one can start from it. */
  completed(s: PassStart): void {
    const { lastPid, pidMax, forks } = s;
    this.prev = lastPid === undefined || pidMax === undefined || forks === undefined || lastPid >= pidMax ? undefined : { lastPid, pidMax, forks, at: s.now };
  }
}

/** What a pass starts from: the counters first, then the listing (on the thread pool). */
export async function readPassStart(
  procfs: Pick<Procfs, 'readLastPid' | 'readPidMax' | 'readForks' | 'listPidsAsync'>,
  o: { full: boolean; sameNamespace: boolean; now: number },
): Promise<PassStart> {
  const read = (f: (() => number | undefined) | undefined): number | undefined => {
    try {
      return f?.();
    } catch {
      return undefined; // unreadable: this pass reads everything
    }
  };
  const lastPid = read(procfs.readLastPid?.bind(procfs));
  const forks = read(procfs.readForks?.bind(procfs));
  const pidMax = read(procfs.readPidMax?.bind(procfs));
  const narrow = !o.full && o.sameNamespace && lastPid !== undefined && forks !== undefined;
  const listed = narrow ? await procfs.listPidsAsync?.().catch(() => undefined) : undefined;
  return { ...o, lastPid, pidMax, forks, live: listed && new Set(listed) };
}

/** Does `procDir` list the daemon's own PID namespace (the one ns_last_pid counts in)? */
export function listsOwnNamespace(procfs: Pick<Procfs, 'readPidNs'>): boolean {
  try {
    const own = parseNsLink(fs.readlinkSync('/proc/self/ns/pid'));
    return own !== undefined && own === procfs.readPidNs(process.pid);
  } catch {
    return false;
  }
}
