// Which mapped PIDs a liveness pass must read. A mapping ends when its
// process exits or its PID names another process; reading every mapping's
// /proc/PID/stat every pass cost ~10 µs each (110 ms of the event loop every
// 2 s at 11,000 mappings, a third of the daemon's CPU under churn).
//
// PIDs are allocated cyclically from ns_last_pid: if it moved from L0 (read
// at the start of the previous pass) to L1 (read at the start of this one),
// every process created in between has a PID in (L0, L1]. So a mapped PID
// that is still listed in /proc and not in that range still names the process
// the previous pass saw; only PIDs missing from the listing (exited) or in the
// range (maybe reused) need their start time read. Everything is read when
// there is no previous pass to go from, when a counter or the listing is
// unreadable, when the range is large, when passes were far apart (the
// counter might have gone round), and at every full resync.
//
// This only decides when a mapping is *removed*: every Attest still compares
// the process's start time with the mapping's before it answers.

/** Passes further apart than this read everything (ns_last_pid may have gone all the way round). */
export const MAX_GAP_MS = 30_000;

export interface PassStart {
  /** When the pass started (the reconciler's clock). */
  readonly now: number;
  /** ns_last_pid, read before the listing. */
  readonly lastPid: number | undefined;
  readonly pidMax: number | undefined;
  /** The PIDs listed in /proc after lastPid was read; undefined when not listed. */
  readonly live: ReadonlySet<number> | undefined;
  /** Read everything (a full resync). */
  readonly full: boolean;
}

export interface PassPlan {
  readonly full: boolean;
  /** Must this mapped PID's start time be read? */
  mustRead(pid: number): boolean;
}

const ALL: PassPlan = { full: true, mustRead: () => true };

export class LivenessPlanner {
  private prev: { lastPid: number; at: number } | undefined;

  plan(s: PassStart): PassPlan {
    const prev = this.prev;
    const { lastPid, pidMax, live } = s;
    if (s.full || !prev || lastPid === undefined || pidMax === undefined || !live || s.now - prev.at > MAX_GAP_MS || s.now < prev.at) return ALL;
    const span = (lastPid - prev.lastPid + pidMax) % pidMax;
    if (span > pidMax / 4) return ALL;
    const from = prev.lastPid;
    return {
      full: false,
      mustRead: pid => {
        if (!live.has(pid)) return true; // exited (or not ours to see): read to be sure
        const d = (pid - from + pidMax) % pidMax;
        return d >= 1 && d <= span; // allocated since the previous pass: maybe another process now
      },
    };
  }

  /** The pass that began with `s` went through every mapping: the next one can start from it. */
  completed(s: PassStart): void {
    this.prev = s.lastPid === undefined ? undefined : { lastPid: s.lastPid, at: s.now };
  }
}
