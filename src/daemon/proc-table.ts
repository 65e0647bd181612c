// Incremental process table: which host PIDs carry which container PID.
//
// readdir('/proc') is cheap; /proc/H/status is read once per PID not seen
// before (for NSpid), never again for a known PID. A PID whose process exited
// and whose number was reused between two refreshes keeps a stale index entry
// until the next full resync; that can only hide a candidate (the marker stays
// pending until the resync), never create one, because every candidate is
// re-read and re-validated by its start time before it is used.
import type { Procfs } from './procfs.js';
import { TimeSlice, tick } from './time-slice.js';

export interface Candidate {
  readonly pid: number;
  readonly startTime: number;
  readonly nspid: readonly number[];
}

/** Largest range of newly allocated PIDs read one by one instead of listing /proc. */
const PROBE_MAX = 1024;

export class ProcTable {
  /** host PID → container PID (last NSpid value); 0 when unreadable. */
  private cpidOf = new Map<number, number>();
  private byCpid = new Map<number, Set<number>>();
  /**
   * Pod UID of a PID (null: none), read once, used only to skip candidates
   * of other pods before the costlier re-validation; rule 2 itself is always
   * checked on a fresh read. Same staleness as the index (see above).
   */
  private podOf = new Map<number, string | null>();

  constructor(private readonly procfs: Procfs) {}

  get size(): number {
    return this.cpidOf.size;
  }

  has(pid: number): boolean {
    return this.cpidOf.has(pid);
  }

  private index(pid: number, cpid: number): void {
    this.cpidOf.set(pid, cpid);
    let set = this.byCpid.get(cpid);
    if (!set) this.byCpid.set(cpid, (set = new Set()));
    set.add(pid);
  }

  private unindex(pid: number): void {
    const cpid = this.cpidOf.get(pid);
    if (cpid === undefined) return;
    this.cpidOf.delete(pid);
    this.podOf.delete(pid);
    const set = this.byCpid.get(cpid);
    if (set) {
      set.delete(pid);
      if (set.size === 0) this.byCpid.delete(cpid);
    }
  }

  private readOne(pid: number): void {
    const ns = this.procfs.readNSpid(pid);
    if (ns === undefined) return; // exited between readdir and read
    this.index(pid, ns[ns.length - 1] ?? 0);
  }

  /** Counts full resyncs swapped in (see listingSteps). */
  private generation = 0;
  /** ns_last_pid at the last refresh, when the probe path may be used. */
  private lastPid: number | undefined;
  private pidMax: number | undefined;
  /** Did the last refresh only probe the newly allocated PID range? */
  lastWasProbe = false;

  /**
   * Cheapest refresh that finds every process created since the last one.
   * PIDs are allocated cyclically: if ns_last_pid moved from L0 to L1, every
   * new process has a PID in (L0, L1], so those few are read directly (also
   * healing any reused PID among them) instead of listing all of /proc.
   * Exited PIDs are dropped by the next full listing (or when a candidate
   * fails re-validation). Falls back to a full listing when the range is
   * large or the counters are not readable.
   */
  refresh(): { added: number; removed: number } {
    return this.probe() ?? this.refreshFull();
  }

  /** refresh(), yielding to the event loop while it reads many new PIDs (a burst of process starts). */
  async refreshAsync(): Promise<{ added: number; removed: number }> {
    const probed = this.probe();
    if (probed) return probed;
    const last = this.nextLastPid ?? this.procfs.readLastPid?.();
    const steps = this.listingSteps(last, await this.listPids());
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await tick();
    }
  }

  /** The probe path of refresh(), or undefined when a listing is needed. */
  private probe(): { added: number; removed: number } | undefined {
    const last = this.procfs.readLastPid?.();
    this.pidMax ??= this.procfs.readPidMax?.();
    const prev = this.lastPid;
    this.nextLastPid = last;
    if (last !== undefined && prev !== undefined && this.pidMax !== undefined && last < this.pidMax) {
      const span = (last - prev + this.pidMax) % this.pidMax;
      if (span <= PROBE_MAX) {
        let added = 0;
        for (let i = 1; i <= span; i++) {
          let pid = (prev + i) % this.pidMax;
          if (pid === 0) pid = this.pidMax; // never allocated; harmless
          this.unindex(pid);
          const before = this.cpidOf.size;
          this.readOne(pid);
          if (this.cpidOf.size > before) added++;
        }
        this.lastPid = last;
        this.nextLastPid = undefined;
        this.lastWasProbe = true;
        return { added, removed: 0 };
      }
    }
    return undefined;
  }

  /** ns_last_pid as read by the last probe(), recorded once the listing it led to is done. */
  private nextLastPid: number | undefined;

  /** Incremental refresh by listing /proc: drop PIDs that are gone, read only new ones. */
  refreshFull(): { added: number; removed: number } {
    const last = this.nextLastPid ?? this.procfs.readLastPid?.();
    const steps = this.listingSteps(last, this.procfs.listPids());
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * refreshFull() as steps: it yields after every slice of reads (see
   * TimeSlice). A full resync may swap its table in while these steps wait:
   * then the listing is older than the table, so it removes nothing and
   * leaves the resync's ns_last_pid in place (what the listing read into the
   * old table is in the range the next refresh probes).
   */
  private *listingSteps(last: number | undefined, live: number[]): Generator<void, { added: number; removed: number }> {
    this.lastWasProbe = false;
    this.nextLastPid = undefined;
    const generation = this.generation;
    const seen = new Set<number>();
    const slice = new TimeSlice();
    let added = 0;
    for (const pid of live) {
      seen.add(pid);
      if (!this.cpidOf.has(pid)) {
        this.readOne(pid);
        added++;
        if (slice.due(32)) {
          yield;
          slice.restart();
        }
      }
    }
    if (generation !== this.generation) return { added, removed: 0 };
    let removed = 0;
    if (seen.size !== this.cpidOf.size || added > 0) {
      for (const pid of this.cpidOf.keys()) {
        if (!seen.has(pid)) {
          this.unindex(pid);
          removed++;
        }
      }
    }
    this.lastPid = last;
    return { added, removed };
  }

  /** The PIDs in /proc, listed off the event loop when the procfs can. */
  private listPids(): Promise<number[]> {
    return this.procfs.listPidsAsync?.() ?? Promise.resolve(this.procfs.listPids());
  }

  /** Full resync: re-read every PID's status (heals reused PIDs); yields to the event loop. */
  async fullResync(): Promise<number> {
    const last = this.procfs.readLastPid?.();
    const live = await this.listPids();
    // Built aside and swapped in whole: batches running meanwhile see the old
    // table, never a half-filled one.
    const fresh = new ProcTable(this.procfs);
    const slice = new TimeSlice();
    for (const pid of live) {
      fresh.readOne(pid);
      if (slice.due(32)) await slice.yield();
    }
    this.cpidOf = fresh.cpidOf;
    this.byCpid = fresh.byCpid;
    this.podOf = fresh.podOf;
    this.generation++;
    // Processes created while this ran are in (last, now]: the next refresh probes them.
    this.lastPid = last;
    this.lastWasProbe = false;
    return this.cpidOf.size;
  }

  /**
   * Processes whose innermost PID is `cpid`, each re-read now (start time,
   * NSpid, start time again, so a PID reused mid-read is not mistaken).
   */
  candidates(cpid: number, wantPod?: string, skipped?: [pid: number, pod: string | null][]): Candidate[] {
    const set = this.byCpid.get(cpid);
    if (!set) return [];
    const out: Candidate[] = [];
    for (const pid of [...set]) {
      if (wantPod !== undefined) {
        let pod = this.podOf.get(pid);
        if (pod === undefined) {
          pod = this.procfs.readCgroup(pid)?.podUid ?? null;
          this.podOf.set(pid, pod);
        }
        if (pod !== wantPod) {
          skipped?.push([pid, pod]);
          continue;
        }
      }
      const c = this.revalidate(pid);
      if (c === undefined) continue;
      if (c.nspid[c.nspid.length - 1] === cpid) out.push(c);
    }
    return out;
  }

  /** Re-reads one PID; fixes the index if it changed; undefined if gone or unstable. */
  revalidate(pid: number): Candidate | undefined {
    const s1 = this.procfs.readStartTime(pid);
    const nspid = s1 === undefined ? undefined : this.procfs.readNSpid(pid);
    const s2 = nspid === undefined ? undefined : this.procfs.readStartTime(pid);
    if (s1 === undefined || nspid === undefined || s2 !== s1) {
      this.unindex(pid);
      return undefined;
    }
    const cpid = nspid[nspid.length - 1] ?? 0;
    if (this.cpidOf.get(pid) !== cpid) {
      this.unindex(pid); // also forgets its pod: it is another process now
      this.index(pid, cpid);
    }
    return { pid, startTime: s1, nspid };
  }
}
