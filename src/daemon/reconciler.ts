// The reconciler owns all mutable mapping state: marker records, the process
// table and the mappings. It is the only writer; it publishes immutable PidMap
// snapshots (see core/pid-map.ts) and nothing else is shared. Work arrives as
// "dirty" paths (watcher events, resync, retries) and is done in batches, so a
// burst of markers costs one /proc refresh, not one per marker.
//
// Why the mapping can be trusted (see design.md, "Mapping a marker"): the
// marker's content is attacker input, so it is only ever a claim. A claim is
// accepted for host PID H only when data the kernel controls agrees: H's
// innermost PID (NSpid in /proc/H/status), H's pod (the cgroup path in
// /proc/H/cgroup, which the workload cannot change) matching the pod UID in
// the marker's directory path (kubelet controls it), H's view of the very same
// file (device + inode through /proc/H/root, no symlink followed), and H's
// start time (field 22 of /proc/H/stat), which also pins the mapping to this
// process and no later one with the same PID number.
import { roleEventOf, type RoleEventInput } from '../core/history.js';
import { parseMarkerBytes, type Marker } from '../core/marker.js';
import { PidMap, type Mapping } from '../core/pid-map.js';
import { selectorValuesFor } from '../core/selectors.js';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import type { ContextDir, Layout } from './layout.js';
import { isMarkerName } from './layout.js';
import type { Metrics } from './metrics.js';
import { CLK_TCK, type Procfs } from './procfs.js';
import { ProcTable, type Candidate } from './proc-table.js';
import {
  UnsafePathError,
  listDir,
  openDirNoFollow,
  readMarkerFile,
  sameIdentity,
  statThroughRoot,
  type FileIdentity,
} from './secure-fs.js';
import type { RestoredBinding, StateWriter } from './state-writer.js';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type MarkerState = 'mapped' | 'pending' | 'conflict' | 'rejected' | 'stale';

function roleKey(scope: string, m: Marker): string {
  return `${scope}\u0000${m.tenant}\u0000${m.agent_name}\u0000${m.process_role}`;
}

export interface MarkerRecord {
  readonly path: string;
  readonly name: string;
  readonly dir: ContextDir;
  identity: FileIdentity | undefined;
  marker: Marker | undefined;
  state: MarkerState;
  reason: string;
  hostPid: number | undefined;
  /** When the record last changed state or content (ms epoch). */
  changedAt: number;
}

export interface MarkerView {
  readonly path: string;
  readonly state: MarkerState;
  readonly reason: string;
  readonly scope: string;
  readonly podUid: string | undefined;
  readonly hostPid: number | undefined;
  readonly marker: Marker | undefined;
  readonly changedAt: string;
}

export interface ReconcilerOptions {
  readonly layout: Layout;
  readonly procfs: Procfs;
  readonly containerContextDir: string;
  readonly markerMaxBytes: number;
  readonly exclusiveRoles: boolean;
  readonly startSlackMs: number;
  readonly pendingRetryMs: number;
  readonly livenessIntervalMs: number;
  readonly resyncIntervalMs: number;
  readonly state: StateWriter;
  readonly nodeName: string | undefined;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly history?: { record(e: RoleEventInput): void } | undefined;
  /** Injected for tests. */
  readonly now?: () => number;
}

/** Longest stretch of a batch without yielding to the event loop. */
const SLICE_MS = 4;

/** A pending marker is retried often for this long after it changed, then only at resync. */
const PENDING_HOT_MS = 60_000;

export class Reconciler {
  private readonly records = new Map<string, MarkerRecord>();
  private readonly dirProblems = new Map<string, string>();
  /** One ContextDir object per directory, shared by its records. */
  private dirs = new Map<string, ContextDir>();
  private readonly mappings = new Map<number, Mapping>();
  /** Mapping changes since the last publish (null = removed). */
  private changes = new Map<number, Mapping | null>();
  /** scope|tenant|agent|role → host PIDs mapped with it (for exclusive_roles). */
  private readonly roleHolders = new Map<string, Set<number>>();
  private readonly pendingPaths = new Set<string>();
  private readonly conflictPaths = new Set<string>();
  private readonly stateCounts: Record<MarkerState, number> = { mapped: 0, pending: 0, conflict: 0, rejected: 0, stale: 0 };
  private readonly identities = new Map<number, FileIdentity>();
  private readonly table: ProcTable;
  private readonly restored = new Map<string, RestoredBinding>();
  /** Marker versions bound to a process that is gone (persisted in state_dir). */
  private stale = new Map<string, FileIdentity>();
  private staleDirty = false;
  /** Paths named by watcher events (a marker may be in flight for them). */
  private readonly dirty = new Set<string>();
  private readonly dirtyDirs = new Set<string>();
  /** Paths queued by a resync (nothing is known to be in flight). */
  private readonly resyncDirty = new Set<string>();
  private readonly resyncDirtyDirs = new Set<string>();
  /** The running batch includes watcher events. */
  private eventBatch = false;
  private snap: PidMap = PidMap.EMPTY;
  private changed = false;
  private running = false;
  private scheduled = false;
  private retryPending = false;
  private closed = false;
  private batchWaiters: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private readonly log: Logger;
  private readonly now: () => number;
  private readyFlag = false;
  private resyncing: Promise<void> | undefined;
  private readonly publishListeners: ((m: PidMap, changes: ReadonlyMap<number, Mapping | null>) => void)[] = [];
  lastResyncMs = 0;
  resyncCount = 0;

  constructor(private readonly o: ReconcilerOptions) {
    this.table = new ProcTable(o.procfs);
    this.log = o.log.child({ [F.module]: 'reconciler' });
    this.now = o.now ?? Date.now;
  }

  // ---- lifecycle ------------------------------------------------------------

  async start(): Promise<void> {
    for (const b of this.o.state.restore()) this.restored.set(b.markerPath, b);
    this.stale = this.o.state.restoreStale();
    await this.resync();
    this.restored.clear();
    for (const p of [...this.stale.keys()]) {
      if (!this.records.has(p)) {
        this.stale.delete(p);
        this.staleDirty = true;
      }
    }
    this.publish();
    this.o.state.sweep(new Set(this.mappings.keys()));
    this.readyFlag = true;
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.resyncIntervalMs, () => void this.resync());
    every(this.o.livenessIntervalMs, () => this.checkLiveness());
    every(this.o.pendingRetryMs, () => {
      if (this.hasHotPending()) {
        this.retryPending = true;
        this.schedule();
      }
    });
  }

  get ready(): boolean {
    return this.readyFlag;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.resyncing;
    this.releaseWaiters();
  }

  // ---- inputs -----------------------------------------------------------------

  /** A watcher event for a file or directory path. */
  notify(p: string): void {
    const c = this.o.layout.classify(p);
    if (!c) {
      // The watch root itself or a pod directory: rescan what is below.
      this.dirtyDirs.add(p);
    } else if (c.name === undefined) {
      this.dirtyDirs.add(c.dir.path);
    } else {
      this.dirty.add(path.join(c.dir.path, c.name));
    }
    this.schedule();
  }

  /** Full resync: rescan every context dir and re-read the whole process table. */
  resync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.resyncing ??= (async () => {
      const t0 = performance.now();
      try {
        await this.table.fullResync();
        for (const dir of this.o.layout.contextDirs()) this.resyncDirtyDirs.add(dir.path);
        for (const rec of this.records.values()) this.resyncDirty.add(rec.path);
        for (const dirPath of this.dirProblems.keys()) this.resyncDirtyDirs.add(dirPath);
        this.retryPending = true;
        this.checkLiveness(true);
        await this.runBatches();
        // Forget directories of pods that are gone (no record uses them any more).
        const used = new Map<string, ContextDir>();
        for (const r of this.records.values()) used.set(r.dir.path, r.dir);
        this.dirs = used;
      } catch (err) {
        this.log.error({ [F.err]: err }, 'resync failed');
      } finally {
        this.lastResyncMs = performance.now() - t0;
        this.resyncCount++;
        this.o.metrics.resyncDuration.observe(this.lastResyncMs / 1000);
        this.resyncing = undefined;
      }
    })();
    return this.resyncing;
  }

  /** Attest found that a mapped PID's start time differs (or it is gone). */
  evict(pid: number, cause: 'exited' | 'start_time_changed'): void {
    const m = this.mappings.get(pid);
    if (!m) return;
    this.evictQuiet(m, cause);
    this.publish();
  }

  // ---- outputs ----------------------------------------------------------------

  /** Called with each new snapshot, after it is published. */
  onPublish(l: (m: PidMap, changes: ReadonlyMap<number, Mapping | null>) => void): void {
    this.publishListeners.push(l);
  }

  snapshot(): PidMap {
    return this.snap;
  }

  /** Is a marker for `pid` possibly in flight, so that Attest should wait a little? */
  inFlight(pid: number): boolean {
    // A resync alone does not count: it rarely finds anything new, and unknown
    // PIDs (the SPIRE agent's own health checks) must not wait for it.
    if (this.eventBatch || this.dirty.size > 0 || this.dirtyDirs.size > 0) return true;
    let cpid: number | undefined;
    for (const path of this.pendingPaths) {
      const rec = this.records.get(path);
      if (rec === undefined || rec.marker === undefined) continue;
      if (cpid === undefined) {
        const ns = this.o.procfs.readNSpid(pid);
        if (ns === undefined) return false;
        cpid = ns[ns.length - 1];
      }
      if (rec.marker.container_pid === cpid) {
        this.dirty.add(rec.path);
        this.schedule();
        return true;
      }
    }
    return false;
  }

  /** Resolves after the next batch ends (or after `ms`). */
  nextBatch(ms: number): Promise<void> {
    return new Promise(resolve => {
      const t = setTimeout(done, ms);
      let fired = false;
      function done(): void {
        if (fired) return;
        fired = true;
        clearTimeout(t);
        resolve();
      }
      this.batchWaiters.push(done);
    });
  }

  markers(): MarkerView[] {
    const out: MarkerView[] = [];
    for (const r of this.records.values()) {
      out.push({
        path: r.path,
        state: r.state,
        reason: r.reason,
        scope: r.dir.scope,
        podUid: r.dir.podUid,
        hostPid: r.hostPid,
        marker: r.marker,
        changedAt: new Date(r.changedAt).toISOString(),
      });
    }
    for (const [p, reason] of this.dirProblems) {
      out.push({ path: p, state: 'rejected', reason, scope: '', podUid: undefined, hostPid: undefined, marker: undefined, changedAt: '' });
    }
    return out;
  }

  /**
   * Why `pid` gets the selectors it gets, or none (for /debug/explain). Reads
   * /proc for this one PID; never used on the Attest path.
   */
  explain(pid: number): Record<string, unknown> {
    const pf = this.o.procfs;
    const startTime = pf.readStartTime(pid);
    const nspid = pf.readNSpid(pid);
    const cg = pf.readCgroup(pid);
    const snap = this.snap;
    const m = snap.get(pid);
    const out: Record<string, unknown> = {
      pid,
      exists: startTime !== undefined,
      start_time: startTime ?? null,
      nspid: nspid ?? null,
      container_pid: nspid?.[nspid.length - 1] ?? null,
      pid_namespace: pf.readPidNs(pid) ?? null,
      pod_uid: cg?.podUid ?? null,
      container_id: cg?.containerId ?? null,
      map_version: snap.version,
    };
    if (m) {
      const ok = startTime === m.startTime;
      out['mapped'] = { marker_path: m.markerPath, start_time: m.startTime, start_time_matches: ok };
      out['selectors'] = ok ? m.selectors : [];
      out['verdict'] = ok
        ? `mapped through ${m.markerPath}`
        : 'was mapped, but the start time changed (PID reused or exited): Attest answers nothing and evicts';
      return out;
    }
    out['mapped'] = null;
    out['selectors'] = [];
    const cpid = nspid?.[nspid.length - 1];
    const related: Record<string, unknown>[] = [];
    for (const r of this.records.values()) {
      if (r.marker === undefined || r.marker.container_pid !== cpid) continue;
      let check: string | undefined = 'not evaluated';
      if (startTime !== undefined && nspid !== undefined && r.identity !== undefined) {
        check = this.checkCandidate(r, r.marker, r.identity, { pid, startTime, nspid }) ?? 'passes every rule';
      }
      related.push({ marker_path: r.path, state: r.state, reason: r.reason, this_pid: check });
    }
    out['markers_naming_its_container_pid'] = related;
    out['verdict'] =
      startTime === undefined
        ? 'no such process'
        : related.length === 0
          ? `no marker names container PID ${cpid ?? '?'}: unknown processes get no selectors`
          : 'markers name its container PID, but none is mapped to it (see each marker)';
    return out;
  }

  get processCount(): number {
    return this.table.size;
  }

  // ---- batches ----------------------------------------------------------------

  private schedule(): void {
    if (this.scheduled || this.running || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.runBatches();
    });
  }

  private async runBatches(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed && (this.hasWork() || this.retryPending)) {
        await this.runOneBatch();
        await new Promise<void>(resolve => setImmediate(resolve));
      }
    } catch (err) {
      this.log.error({ [F.err]: err }, 'reconcile batch failed');
    } finally {
      this.running = false;
      this.releaseWaiters();
    }
  }

  private releaseWaiters(): void {
    const w = this.batchWaiters;
    this.batchWaiters = [];
    for (const f of w) f();
  }

  private hasWork(): boolean {
    return this.dirty.size > 0 || this.dirtyDirs.size > 0 || this.resyncDirty.size > 0 || this.resyncDirtyDirs.size > 0;
  }

  /**
   * One batch: one /proc refresh, then every queued marker. Long batches (a
   * resync of thousands of markers) yield to the event loop every few
   * milliseconds and publish what they have so far, so Attest never waits
   * behind them.
   */
  private async runOneBatch(): Promise<void> {
    this.eventBatch = this.dirty.size > 0 || this.dirtyDirs.size > 0;
    const dirs = [...this.dirtyDirs, ...this.resyncDirtyDirs];
    const files = [...this.dirty, ...this.resyncDirty];
    this.dirtyDirs.clear();
    this.dirty.clear();
    this.resyncDirtyDirs.clear();
    this.resyncDirty.clear();
    if (this.retryPending) {
      this.retryPending = false;
      const hot = this.now() - PENDING_HOT_MS;
      for (const p of this.pendingPaths) if ((this.records.get(p)?.changedAt ?? 0) >= hot) files.push(p);
      for (const p of this.conflictPaths) files.push(p);
    }
    this.table.refresh();
    const fds = new Map<string, number | null>();
    try {
      const wanted = new Set(files);
      for (const d of dirs) for (const f of this.scanDir(d, fds)) wanted.add(f);
      // Deterministic order: older marker versions first, so "the earlier mapping stands".
      const ordered = [...wanted].sort();
      let slice = performance.now();
      for (let i = 0; i < ordered.length; i++) {
        this.reconcileFile(ordered[i] as string, fds);
        if ((i & 63) === 63 && performance.now() - slice > SLICE_MS) {
          this.publish();
          this.releaseWaiters();
          await new Promise<void>(resolve => setImmediate(resolve));
          if (this.closed) break;
          slice = performance.now();
        }
      }
    } finally {
      for (const fd of fds.values()) if (fd !== null) fs.closeSync(fd);
      this.eventBatch = false;
    }
    this.publish();
  }

  /** Opens a context dir safely, caching the fd for this batch (null: gone or unsafe). */
  private dirFd(dir: ContextDir, fds: Map<string, number | null>): number | null {
    const cached = fds.get(dir.path);
    if (cached !== undefined) return cached;
    let fd: number | null = null;
    try {
      fd = openDirNoFollow(dir.base, dir.components) ?? null;
      this.dirProblems.delete(dir.path);
    } catch (err) {
      if (!(err instanceof UnsafePathError)) throw err;
      if (this.dirProblems.get(dir.path) === undefined) {
        this.log.warn({ [F.markerPath]: dir.path, [F.reason]: err.reason }, 'context directory rejected');
        this.o.metrics.rejections.inc({ reason: err.reason });
      }
      this.dirProblems.set(dir.path, `${err.reason}: ${err.message}`);
    }
    fds.set(dir.path, fd);
    return fd;
  }

  /** Lists the marker files of a dir (or of every context dir below a path); drops records of vanished ones. */
  private scanDir(p: string, fds: Map<string, number | null>): string[] {
    const c = this.o.layout.classify(p);
    const dirs = c ? [c.dir] : this.o.layout.contextDirs().filter(d => d.path === p || d.path.startsWith(p.endsWith('/') ? p : `${p}/`));
    if (!c && p !== this.o.layout.watchRoot) {
      // A pod directory appeared or vanished: forget records under it that are gone.
      for (const r of this.records.values()) if (r.path.startsWith(`${p}/`)) this.dirty.add(r.path);
    }
    const out: string[] = [];
    for (const dir of dirs) {
      const fd = this.dirFd(dir, fds);
      const present = new Set<string>();
      if (fd !== null) {
        for (const ent of listDir(fd)) {
          if (!isMarkerName(ent.name)) continue;
          const f = path.join(dir.path, ent.name);
          present.add(f);
          out.push(f);
        }
      }
      for (const r of this.records.values()) if (r.dir.path === dir.path && !present.has(r.path)) out.push(r.path);
    }
    return out;
  }

  // ---- one marker -------------------------------------------------------------

  private internDir(d: ContextDir): ContextDir {
    const known = this.dirs.get(d.path);
    if (known) return known;
    this.dirs.set(d.path, d);
    return d;
  }

  private reconcileFile(file: string, fds: Map<string, number | null>): void {
    const classified = this.o.layout.classify(file);
    if (!classified || classified.name === undefined) return;
    const c = { dir: this.internDir(classified.dir), name: classified.name };
    const rec = this.records.get(file);
    const fd = this.dirFd(c.dir, fds);
    if (fd === null) {
      if (rec) this.dropRecord(rec, 'marker_removed');
      return;
    }
    const read = readMarkerFile(fd, c.name, this.o.markerMaxBytes, rec?.identity);
    if (read.kind === 'gone') {
      if (rec) this.dropRecord(rec, 'marker_removed');
      return;
    }
    const r: MarkerRecord =
      rec ??
      ({
        path: file,
        name: c.name,
        dir: c.dir,
        identity: undefined,
        marker: undefined,
        state: 'pending',
        reason: 'new',
        hostPid: undefined,
        changedAt: this.now(),
      } satisfies MarkerRecord);
    if (!rec) {
      this.records.set(file, r);
      this.stateCounts.pending++;
      this.pendingPaths.add(file);
    }

    if (read.kind === 'unchanged') {
      if (r.state === 'pending' || r.state === 'conflict') this.match(r);
      return;
    }
    if (read.kind === 'rejected') {
      this.reject(r, read.reason, read.identity);
      return;
    }
    const parsed = parseMarkerBytes(read.bytes, this.o.markerMaxBytes);
    const prevIdentity = r.identity;
    r.identity = read.identity;
    if (!parsed.ok) {
      this.reject(r, parsed.reason, read.identity);
      return;
    }
    const sameContent = r.marker !== undefined && JSON.stringify(r.marker) === JSON.stringify(parsed.marker);
    r.marker = parsed.marker;
    if (!sameIdentity(prevIdentity, read.identity)) r.changedAt = this.now();
    this.match(r, sameContent);
  }

  private reject(r: MarkerRecord, reason: string, identity: FileIdentity | undefined): void {
    if (r.hostPid !== undefined) this.unmapRecord(r, 'marker_changed');
    r.identity = identity;
    r.marker = undefined;
    if (r.state !== 'rejected' || r.reason !== reason) {
      this.log.warn({ [F.markerPath]: r.path, [F.reason]: reason }, 'marker rejected');
      this.o.metrics.rejections.inc({ reason: reason.split(':')[0] as string });
    }
    this.setState(r, 'rejected', reason);
  }

  /**
   * Applies the four rules of the design to every process whose innermost PID
   * is the marker's container_pid; maps on exactly one survivor.
   */
  private match(r: MarkerRecord, sameContent = false): void {
    const m = r.marker;
    const identity = r.identity;
    if (m === undefined || identity === undefined) return;

    // A marker version restored from the previous run's state: same binding or stale.
    const restored = this.restored.get(r.path);
    if (restored) {
      this.restored.delete(r.path);
      if (sameIdentity(restored.identity, identity)) {
        const now = this.o.procfs.readStartTime(restored.hostPid);
        if (now !== restored.startTime) {
          if (r.hostPid !== undefined) this.unmapRecord(r, 'exited');
          this.setState(r, 'stale', `mapped process exited while the daemon was down (host PID ${restored.hostPid}); the marker must be rewritten to map again`);
          return;
        }
      }
    }

    const staleId = this.stale.get(r.path);
    if (staleId !== undefined) {
      if (sameIdentity(staleId, identity)) {
        this.setState(r, 'stale', r.state === 'stale' ? r.reason : 'the process this marker version was mapped to is gone; the marker must be rewritten to map again');
        return;
      }
      this.stale.delete(r.path);
      this.staleDirty = true;
    }

    const failures: string[] = [];
    const passing: Candidate[] = [];
    let cands: Candidate[];
    for (let attempt = 0; attempt < 2; attempt++) {
      failures.length = 0;
      passing.length = 0;
      const otherPods: [number, string | null][] = [];
      cands = this.table.candidates(m.container_pid, r.dir.podUid, otherPods);
      for (const [pid, pod] of otherPods) failures.push(`host PID ${pid}: pod ${pod ?? 'none'} is not the marker's pod ${r.dir.podUid ?? ''}`);
      for (const cand of cands) {
        const why = this.checkCandidate(r, m, identity, cand);
        if (why === undefined) passing.push(cand);
        else failures.push(`host PID ${cand.pid}: ${why}`);
      }
      // Nothing found after a probe-only refresh: list /proc once and look again
      // (a process can be allocated a PID a moment before it shows in /proc).
      if (passing.length > 0 || !this.table.lastWasProbe) break;
      this.table.refreshFull();
    }

    const current = r.hostPid !== undefined ? this.mappings.get(r.hostPid) : undefined;
    if (passing.length !== 1) {
      if (current) this.unmapRecord(r, 'marker_changed');
      if (passing.length === 0) {
        const shown = failures.slice(0, 8).join('; ') + (failures.length > 8 ? `; and ${failures.length - 8} more` : '');
        const why = failures.length === 0 ? `no process with container PID ${m.container_pid}` : shown;
        this.setState(r, 'pending', `no matching process: ${why}`);
      } else {
        this.setState(r, 'conflict', `ambiguous: host PIDs ${passing.map(p => p.pid).join(', ')} all match`);
      }
      return;
    }
    const winner = passing[0] as Candidate;
    if (current && current.hostPid === winner.pid && current.startTime === winner.startTime) {
      if (sameContent) {
        this.identities.set(current.hostPid, identity);
        return; // rewritten with the same content by the same process: nothing changes
      }
      this.unmapRecord(r, 'marker_changed');
    } else if (current) {
      this.unmapRecord(r, 'marker_changed');
    }

    const holder = this.mappings.get(winner.pid);
    if (holder && holder.markerPath !== r.path) {
      this.setState(r, 'conflict', `host PID ${winner.pid} already holds role ${holder.marker.process_role} via ${holder.markerPath}`);
      return;
    }
    if (this.o.exclusiveRoles) {
      for (const pid of this.roleHolders.get(roleKey(r.dir.scope, m)) ?? []) {
        const other = this.mappings.get(pid);
        if (other && other.markerPath !== r.path) {
          this.setState(r, 'conflict', `role ${m.process_role} already held by live host PID ${other.hostPid} via ${other.markerPath} (exclusive_roles)`);
          return;
        }
      }
    }
    this.map(r, m, identity, winner);
  }

  /** Rules 2-4 (+ writer-started-before-write) for one candidate; undefined when it passes. */
  private checkCandidate(r: MarkerRecord, m: Marker, identity: FileIdentity, cand: Candidate): string | undefined {
    const pf = this.o.procfs;
    if (r.dir.podUid !== undefined) {
      const cg = pf.readCgroup(cand.pid);
      if (cg?.podUid !== r.dir.podUid) return `pod ${cg?.podUid ?? 'none'} is not the marker's pod ${r.dir.podUid}`;
    }
    if (m.process_start_time !== undefined && m.process_start_time !== cand.startTime) {
      return `start time ${cand.startTime} differs from the marker's ${m.process_start_time}`;
    }
    if (m.pid_namespace !== undefined) {
      const ns = pf.readPidNs(cand.pid);
      if (ns !== m.pid_namespace) return `PID namespace ${ns ?? 'unknown'} differs from the marker's ${m.pid_namespace}`;
    }
    const startedAt = pf.bootTimeMs() + (cand.startTime * 1000) / CLK_TCK;
    if (startedAt > identity.ctimeMs + this.o.startSlackMs) {
      return 'process started after the marker was written (cannot be its writer)';
    }
    const seen = statThroughRoot(pf.rootOf(cand.pid), this.o.containerContextDir, r.name);
    if ('problem' in seen) return seen.problem;
    if (seen.dev !== identity.dev || seen.ino !== identity.ino) return 'sees a different file at the marker path';
    return undefined;
  }

  private map(r: MarkerRecord, m: Marker, identity: FileIdentity, cand: Candidate): void {
    const pf = this.o.procfs;
    const cg = pf.readCgroup(cand.pid);
    const podUid = r.dir.podUid ?? cg?.podUid;
    const containerId = cg?.containerId;
    const mapping: Mapping = Object.freeze({
      hostPid: cand.pid,
      startTime: cand.startTime,
      pidNs: pf.readPidNs(cand.pid),
      containerPid: m.container_pid,
      podUid,
      containerId,
      marker: m,
      markerPath: r.path,
      scope: r.dir.scope,
      mappedAt: this.now(),
      selectors: Object.freeze(selectorValuesFor({ ...m, podUid, containerId })),
    });
    this.mappings.set(cand.pid, mapping);
    this.changes.set(cand.pid, mapping);
    const key = roleKey(mapping.scope, m);
    let holders = this.roleHolders.get(key);
    if (!holders) this.roleHolders.set(key, (holders = new Set()));
    holders.add(cand.pid);
    this.identities.set(cand.pid, identity);
    r.hostPid = cand.pid;
    this.changed = true;
    this.setState(r, 'mapped', `mapped to host PID ${cand.pid}`);
    this.o.state.write(mapping, identity, this.o.nodeName);
    this.o.history?.record(roleEventOf('grant', 'mapped', mapping, identity.ino));
    this.log.info(
      { [F.markerPath]: r.path, [F.hostPid]: cand.pid, [F.containerPid]: m.container_pid, [F.role]: m.process_role, [F.podUid]: podUid },
      'marker mapped',
    );
  }

  private unmap(m: Mapping, cause: string): void {
    if (this.mappings.get(m.hostPid) !== m) return;
    this.mappings.delete(m.hostPid);
    this.changes.set(m.hostPid, null);
    const key = roleKey(m.scope, m.marker);
    const holders = this.roleHolders.get(key);
    holders?.delete(m.hostPid);
    if (holders?.size === 0) this.roleHolders.delete(key);
    this.o.history?.record(roleEventOf('removal', cause, m, this.identities.get(m.hostPid)?.ino));
    this.identities.delete(m.hostPid);
    this.changed = true;
    this.o.state.remove(m.hostPid);
    this.o.metrics.evictions.inc({ cause });
    const rec = this.records.get(m.markerPath);
    if (rec && rec.hostPid === m.hostPid) rec.hostPid = undefined;
    this.log.info({ [F.markerPath]: m.markerPath, [F.hostPid]: m.hostPid, [F.reason]: cause }, 'mapping removed');
    // A role or PID was freed: markers waiting in conflict may now map.
    for (const p of this.conflictPaths) this.dirty.add(p);
    if (this.dirty.size > 0) this.schedule();
  }

  private unmapRecord(r: MarkerRecord, cause: string): void {
    const m = r.hostPid !== undefined ? this.mappings.get(r.hostPid) : undefined;
    if (m && m.markerPath === r.path) this.unmap(m, cause);
    r.hostPid = undefined;
  }

  private dropRecord(r: MarkerRecord, cause: string): void {
    this.unmapRecord(r, cause);
    this.records.delete(r.path);
    this.stateCounts[r.state]--;
    this.pendingPaths.delete(r.path);
    this.conflictPaths.delete(r.path);
    if (this.stale.delete(r.path)) this.staleDirty = true;
  }

  private setState(r: MarkerRecord, state: MarkerState, reason: string): void {
    if (r.state !== state) {
      r.changedAt = this.now();
      this.stateCounts[r.state]--;
      this.stateCounts[state]++;
      if (r.state === 'pending') this.pendingPaths.delete(r.path);
      if (r.state === 'conflict') this.conflictPaths.delete(r.path);
      if (state === 'pending') this.pendingPaths.add(r.path);
      if (state === 'conflict') this.conflictPaths.add(r.path);
    }
    if (state === 'stale' && r.identity !== undefined) {
      this.stale.set(r.path, r.identity);
      this.staleDirty = true;
    } else if (state !== 'stale' && this.stale.delete(r.path)) {
      this.staleDirty = true;
    }
    r.state = state;
    r.reason = reason;
  }

  private hasHotPending(): boolean {
    const hot = this.now() - PENDING_HOT_MS;
    for (const p of this.pendingPaths) if ((this.records.get(p)?.changedAt ?? 0) >= hot) return true;
    return false;
  }

  /** Evicts mappings whose process exited or whose PID now belongs to another process. */
  private checkLiveness(quiet = false): void {
    let evicted = 0;
    for (const m of [...this.mappings.values()]) {
      const st = this.o.procfs.readStartTime(m.hostPid);
      if (st === m.startTime) continue;
      const cause = st === undefined ? 'exited' : 'start_time_changed';
      this.evictQuiet(m, cause);
      evicted++;
    }
    if (evicted > 0) this.publish();
    if (evicted > 0 && !quiet) this.log.debug({ evicted }, 'liveness check evicted mappings');
  }

  private evictQuiet(m: Mapping, cause: 'exited' | 'start_time_changed'): void {
    this.unmap(m, cause);
    const rec = this.records.get(m.markerPath);
    if (rec) {
      this.setState(rec, 'stale', `mapped process ${cause === 'exited' ? 'exited' : 'was replaced (start time changed)'} (host PID ${m.hostPid}); the marker must be rewritten to map again`);
    }
  }

  private publish(): void {
    if (this.staleDirty) {
      this.staleDirty = false;
      this.o.state.writeStale(this.stale);
    }
    for (const [state, n] of Object.entries(this.stateCounts)) this.o.metrics.markers.set({ state }, n);
    this.o.metrics.mapSize.set(this.mappings.size);
    if (!this.changed) return;
    this.changed = false;
    const changes = this.changes;
    this.changes = new Map();
    this.snap = this.snap.next(changes, this.mappings);
    for (const l of this.publishListeners) l(this.snap, changes);
  }
}
