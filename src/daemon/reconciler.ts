// The I/O shell around the decision core (core/decision.ts). It owns every
// piece of mutable daemon state and is its only writer: it reads marker
// files (secure-fs), applies the mapping rules to candidates (rules.ts),
// feeds both to the core, persists what the core decided (decision-store.ts)
// before carrying it out (apply.ts), and tells the map feed what changed.
//
// Work arrives as paths: watcher events (queued per pod, taken fairly, each
// pod within its own budget: work-queue.ts), resyncs and retries. It is done
// in batches, so a burst of markers costs one /proc refresh, not one per
// marker. A long batch yields every few milliseconds and publishes what it
// has, observing new files in order of age, so a partial decision never
// favours a younger claim. A pod holds at most `podMarkerLimit` marker
// records; files beyond it are counted and ignored, never costing other pods.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DecisionCore, type Observation } from '../core/decision.js';
import { escapeText, unsafeNameReason } from '../core/escape.js';
import { mayBeInFlight, scopeOfProcess } from '../core/in-flight.js';
import { parseMarkerBytes, type Marker } from '../core/marker.js';
import type { Mapping, PidMap } from '../core/pid-map.js';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import { applySettlement, type IdentityChange } from './apply.js';
import type { DecisionStore } from './decision-store.js';
import { explainPid } from './explain.js';
import { FlightTracker, type FlightChanges } from './flight.js';
import type { ContextDir, Layout } from './layout.js';
import { isMarkerName } from './layout.js';
import { MapPublisher } from './map-publisher.js';
import type { Metrics } from './metrics.js';
import type { Procfs } from './procfs.js';
import { ProcTable } from './proc-table.js';
import { MarkerRecords, type MarkerRecord, type MarkerView } from './records.js';
import { evaluateClaim, type RuleContext } from './rules.js';
import { UnsafePathError, fileId, listDir, openDirNoFollow, readMarkerFile, type FileIdentity } from './secure-fs.js';
import type { StateWriter } from './state-writer.js';
import { TimeSlice, tick } from './time-slice.js';
import { LivenessPlanner, listsOwnNamespace, readPassStart } from './liveness.js';
import { WorkQueue } from './work-queue.js';

export type { IdentityChange } from './apply.js';
export type { MarkerState, MarkerView } from './records.js';

export function roleKey(scope: string, m: Marker): string {
  return `${scope}\u0000${m.tenant}\u0000${m.agent_name}\u0000${m.process_role}`;
}

/** What a published update carries to the map feed. */
export interface Published {
  readonly map: PidMap;
  /** Host PIDs whose mapping changed (null: removed); empty when only the flight state changed. */
  readonly changes: ReadonlyMap<number, Mapping | null>;
  readonly flight: FlightChanges | undefined;
  /** Every scope whose state this changes ("*": all of them). */
  readonly scopes: ReadonlySet<string>;
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
  /** Marker records one pod may hold. */
  readonly podMarkerLimit: number;
  /** Marker events a pod may cause per second (bursts of twice that). */
  readonly podEventRate: number;
  readonly state: StateWriter;
  readonly store: DecisionStore;
  readonly nodeName: string | undefined;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Injected for tests. */
  readonly now?: () => number;
}

/** A pending marker is retried often for this long after it changed, then only at resync. */
const PENDING_HOT_MS = 60_000;
/** Event paths of one pod per batch; resync paths per batch. */
const PER_SCOPE_BATCH = 256;
const RESYNC_CHUNK = 2048;
/** Distinct queued event paths of one pod before they are given up for a rescan of its directory. */
const MAX_QUEUED_PER_SCOPE = 4096;

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 22);
}

export class Reconciler {
  private readonly flight = new FlightTracker();
  private readonly records: MarkerRecords;
  private readonly dirProblems = new Map<string, string>();
  /** Files a pod has beyond its marker budget, by context directory (as of the last look). */
  private readonly overBudget = new Map<string, number>();
  /** One ContextDir object per directory, shared by its records. */
  private dirs = new Map<string, ContextDir>();
  private readonly core: DecisionCore;
  private readonly map = new MapPublisher();
  private readonly table: ProcTable;
  private readonly rules: RuleContext;
  /** Watcher events: file paths per pod, and directories to rescan. */
  private readonly events: WorkQueue;
  private readonly eventDirs = new Set<string>();
  /** Pods whose events wait for budget (logged and counted when they start to). */
  private throttled = new Set<string>();
  /** Resync work (nothing is known to be in flight for it). */
  private readonly resyncPaths = new Set<string>();
  private readonly resyncDirs = new Set<string>();
  private running = false;
  private batchRun: Promise<void> | undefined;
  /** The running batch took resync work (see resyncDone). */
  private batchHasResync = false;
  /** Resolved at the end of every batch, and when the batch loop stops. */
  private batchEndWaiters: (() => void)[] = [];
  /** True until the startup scan is complete: nothing is decided before. */
  private startingUp = true;
  private scheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private retryPending = false;
  private closed = false;
  private batchWaiters: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private readonly log: Logger;
  private readonly now: () => number;
  private readyFlag = false;
  private resyncing: Promise<void> | undefined;
  private livenessRun: Promise<void> | undefined;
  private readonly liveness = new LivenessPlanner();
  private ownNamespace: boolean | undefined;
  /** Host PIDs bound or resumed since the last liveness pass took its list of bindings. */
  private boundSincePass = new Set<number>();
  /** Liveness passes completed, and the start times they read (for /debug/status). */
  private livenessPasses = 0;
  private livenessReads = 0;
  private readonly publishListeners: ((u: Published) => void)[] = [];
  private readonly changeListeners: ((c: IdentityChange) => void)[] = [];
  lastResyncMs = 0;
  resyncCount = 0;
  /** Context directories listed (each a readdir of the whole directory). */
  private dirScans = 0;

  constructor(private readonly o: ReconcilerOptions) {
    this.now = o.now ?? Date.now;
    this.table = new ProcTable(o.procfs);
    this.core = new DecisionCore({ exclusiveRoles: o.exclusiveRoles });
    this.records = new MarkerRecords(this.flight, this.now);
    this.rules = { procfs: o.procfs, table: this.table, containerContextDir: o.containerContextDir, startSlackNs: BigInt(Math.round(o.startSlackMs * 1e6)) };
    this.events = new WorkQueue({ perBatch: PER_SCOPE_BATCH, rate: o.podEventRate, burst: 2 * o.podEventRate, maxQueued: MAX_QUEUED_PER_SCOPE, now: () => performance.now() });
    this.log = o.log.child({ [F.module]: 'reconciler' });
  }

  // ---- lifecycle ------------------------------------------------------------

  async start(): Promise<void> {
    const loaded = this.o.store.load();
    if (loaded.problem !== undefined) {
      this.o.metrics.stateCorrupt.inc();
      this.log.error({ [F.reason]: loaded.problem }, 'decision state unusable: contended roles stay unmapped until resolved (fail safe)');
    } else if (loaded.lost) {
      this.log.warn({ file: this.o.store.file }, 'no decision state (first start, or state_dir lost): claims present now have no known order; contended roles stay unmapped until resolved');
    } else if (loaded.tornTail) {
      this.log.warn({ file: this.o.store.file }, 'decision journal ends in a torn line (crash mid-append); ignored');
    }
    this.core.restore(loaded.records, {
      lost: loaded.lost,
      alive: c => loaded.sameBoot && this.o.procfs.readStartTime(c.pid) === c.startTime,
    });
    await this.resync();
    this.core.startupDone();
    this.startingUp = false;
    this.settleAlone();
    this.o.store.compact(this.core.records());
    this.publish();
    this.o.state.sweep(new Set([...this.map.values()].map(m => m.hostPid)));
    this.readyFlag = true;
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.resyncIntervalMs, () => void this.resync());
    every(this.o.livenessIntervalMs, () => void this.checkLiveness());
    every(this.o.pendingRetryMs, () => {
      if (this.hasHotRetry()) {
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
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.resyncing;
    await this.livenessRun;
    this.o.store.close();
    this.releaseWaiters();
  }

  // ---- inputs -----------------------------------------------------------------

  /** A watcher event for a file or directory path. */
  notify(p: string): void {
    const c = this.o.layout.classify(p);
    const scope = c?.dir.scope ?? this.o.layout.scopeOf(p);
    if (c?.name !== undefined) {
      const file = path.join(c.dir.path, c.name);
      if (!this.events.add(scope, file)) {
        this.o.metrics.podBudget.inc({ budget: 'queued_events' });
        this.eventDirs.add(c.dir.path); // too many distinct names queued: one rescan instead
      }
    } else {
      this.eventDirs.add(c ? c.dir.path : p); // a context dir, a pod dir or the watch root: rescan below
    }
    this.flight.queuedEvent(scope);
    this.schedule();
    this.publishFlight();
  }

  /** Full resync: rescan every context dir and re-read the whole process table. */
  resync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.resyncing ??= (async () => {
      const t0 = performance.now();
      try {
        this.o.procfs.recalibrate();
        await this.table.fullResync();
        for (const dir of this.o.layout.contextDirs()) this.resyncDirs.add(dir.path);
        for (const rec of this.records.values()) this.resyncPaths.add(rec.path);
        for (const dirPath of this.dirProblems.keys()) this.resyncDirs.add(dirPath);
        this.retryPending = true;
        await this.checkLiveness(true);
        await this.resyncDone();
        // Forget directories of pods that are gone (no record uses them any more).
        const used = new Map<string, ContextDir>();
        for (const r of this.records.values()) used.set(r.dir.path, r.dir);
        this.dirs = used;
        for (const d of this.overBudget.keys()) if (!used.has(d)) this.overBudget.delete(d);
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
    if (!this.core.holderOf(pid)) return;
    this.core.processGone(pid, cause === 'exited' ? undefined : -1);
    this.settleAlone();
    this.publish();
  }

  // ---- outputs ----------------------------------------------------------------

  /** Called with each published update (map changes and/or flight changes). */
  onPublish(l: (u: Published) => void): void {
    this.publishListeners.push(l);
  }

  /** Called with every grant and revocation of a role, after it is persisted. */
  onIdentityChange(l: (c: IdentityChange) => void): void {
    this.changeListeners.push(l);
  }

  snapshot(): PidMap {
    return this.map.snapshot();
  }

  /** The flight state (busy scopes, waiting claims), for the map feed's full messages. */
  flightState(): { pending: Map<string, number[]>; busy: string[] } {
    return { pending: this.flight.allPending(), busy: [...this.flight.busy] };
  }

  /**
   * Is a marker for `pid` possibly in flight, so that Attest should wait a
   * little? Only what concerns its own scope counts (core/in-flight.ts); a
   * waiting claim naming it is re-checked at once.
   */
  inFlight(pid: number): boolean {
    const pf = this.o.procfs;
    let scope: string | undefined;
    const scopeOf = (): string | undefined => (scope = scopeOfProcess(this.o.layout.kind, this.o.layout.flatScope, () => pf.readCgroup(pid)?.podUid));
    let cpid: number | undefined;
    const may = mayBeInFlight(this.flight, scopeOf, () => {
      const ns = pf.readNSpid(pid);
      cpid = ns?.[ns.length - 1];
      return cpid;
    });
    if (may && cpid !== undefined) {
      for (const p of this.records.retry) {
        const r = this.records.get(p);
        if (r?.state === 'pending' && r.dir.scope === scope && r.marker?.container_pid === cpid) this.events.add(r.dir.scope, r.path);
      }
      this.schedule();
    }
    return may;
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
    for (const r of this.records.values()) out.push(this.records.view(r));
    const row = (p: string, reason: string): MarkerView => ({ path: p, state: 'rejected', reason, scope: '', pod_uid: null, host_pid: null, marker: null, inode: null, changed_at: null });
    for (const [p, reason] of this.dirProblems) out.push(row(p, reason));
    for (const [p, n] of this.overBudget) {
      out.push(row(p, `over-budget: ${n} marker files beyond the pod's limit of ${this.o.podMarkerLimit} are ignored (pod_marker_limit)`));
    }
    for (const scope of this.events.throttledScopes()) {
      out.push(row(scope, `over-budget: marker events beyond ${this.o.podEventRate}/s wait (pod_event_rate)`));
    }
    return out;
  }

  /** Why `pid` gets the selectors it gets, or none (for /debug/explain). Never on the Attest path. */
  explain(pid: number): Record<string, unknown> {
    return explainPid(pid, {
      procfs: this.o.procfs,
      snapshot: this.map.snapshot(),
      rules: this.rules,
      claims: () => this.records.values(),
      writtenAt: (p, key, ctimeNs) => this.core.writtenAt(p, key, ctimeNs),
    });
  }

  get processCount(): number {
    return this.table.size;
  }

  /** Work and budgets, for /debug/status. */
  workStatus(): Record<string, unknown> {
    return {
      queued_events: this.events.size,
      throttled_pods: this.events.throttledScopes(),
      busy_scopes: [...this.flight.busy],
      over_budget_dirs: this.overBudget.size,
      dir_scans: this.dirScans,
      liveness_passes: this.livenessPasses,
      liveness_reads: this.livenessReads,
    };
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

  /** Runs batches until no work is left (a run going on is joined, not doubled). */
  private runBatches(): Promise<void> {
    if (!this.running || !this.batchRun) this.batchRun = this.batchLoop();
    return this.batchRun;
  }

  /**
   * Resolves once the resync's own work (its directories, its paths, the
   * pending retry) has gone through a batch. Not when the batch loop stops:
   * one pod writing steadily within its budget keeps the loop going, and the
   * startup scan (readiness) must not wait for that.
   */
  private async resyncDone(): Promise<void> {
    while (!this.closed && (this.resyncDirs.size > 0 || this.resyncPaths.size > 0 || this.retryPending || this.batchHasResync)) {
      const ended = new Promise<void>(resolve => this.batchEndWaiters.push(resolve));
      void this.runBatches();
      await ended;
    }
  }

  private batchEnded(): void {
    this.batchHasResync = false;
    const waiters = this.batchEndWaiters;
    this.batchEndWaiters = [];
    for (const w of waiters) w();
  }

  private async batchLoop(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed && (this.hasWork() || this.retryPending)) {
        await this.runOneBatch();
        this.batchEnded();
        await tick();
      }
    } catch (err) {
      this.log.error({ [F.err]: err }, 'reconcile batch failed');
    } finally {
      this.running = false;
      this.batchEnded();
      this.releaseWaiters();
      this.wakeForThrottled();
    }
  }

  /** Pods over their event rate keep paths queued: come back when they have budget again. */
  private wakeForThrottled(): void {
    const ms = this.events.nextReadyInMs();
    if (ms === undefined || this.wakeTimer || this.closed) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.schedule();
    }, Math.max(ms, 10));
    this.wakeTimer.unref();
  }

  private releaseWaiters(): void {
    const w = this.batchWaiters;
    this.batchWaiters = [];
    for (const f of w) f();
  }

  private hasWork(): boolean {
    return this.events.hasReady() || this.eventDirs.size > 0 || this.resyncPaths.size > 0 || this.resyncDirs.size > 0;
  }

  /** One batch: one /proc refresh, then the queued markers, then the decision. */
  private async runOneBatch(): Promise<void> {
    const taken = this.events.take();
    this.noteThrottled();
    const eventScopes = new Set(taken.scopes);
    const dirs: [string, boolean][] = [...[...this.eventDirs].map(d => [d, true] as [string, boolean]), ...[...this.resyncDirs].map(d => [d, false] as [string, boolean])];
    for (const d of this.eventDirs) eventScopes.add(this.o.layout.scopeOf(d));
    this.batchHasResync = this.resyncDirs.size > 0 || this.resyncPaths.size > 0 || this.retryPending;
    this.eventDirs.clear();
    this.resyncDirs.clear();
    const wanted = new Set(taken.paths);
    for (const p of this.resyncPaths) {
      if (wanted.size >= taken.paths.length + RESYNC_CHUNK) break;
      wanted.add(p);
      this.resyncPaths.delete(p);
    }
    if (this.retryPending) {
      this.retryPending = false;
      const hot = this.now() - PENDING_HOT_MS;
      for (const p of this.records.retry) if ((this.records.get(p)?.changedAt ?? 0) >= hot) wanted.add(p);
    }
    this.flight.batchStarted(eventScopes, this.events.queuedScopes());
    this.core.beginBatch();
    await this.table.refreshAsync();
    const fds = new Map<string, number | null>();
    try {
      const slice = new TimeSlice();
      for (const [d, withKnown] of dirs) {
        for (const f of this.scanDir(d, fds, withKnown)) wanted.add(f);
        if (slice.due(1)) await slice.yield();
      }
      const ordered = await this.byAge(wanted, fds, slice);
      for (const file of ordered) {
        this.reconcileFile(file, fds);
        if (slice.due()) {
          this.settle(fds);
          this.publish();
          this.releaseWaiters();
          await slice.yield();
          if (this.closed) break;
        }
      }
      this.settle(fds);
    } finally {
      for (const fd of fds.values()) if (fd !== null) fs.closeSync(fd);
      this.flight.batchEnded();
    }
    this.publish();
  }

  /**
   * Orders a large batch: files the core already knows first (their age is
   * known), then new ones by ctime, oldest first: a batch that publishes as it
   * goes must never let a younger new claim be decided before an older one.
   */
  private async byAge(paths: Set<string>, fds: Map<string, number | null>, slice: TimeSlice): Promise<string[]> {
    if (paths.size <= 64) return [...paths];
    const known: string[] = [];
    const keyed: [bigint, string][] = [];
    for (const p of paths) {
      if (this.records.get(p)) {
        known.push(p);
        continue;
      }
      let ns = -1n;
      const c = this.o.layout.classify(p);
      const fd = c?.name !== undefined ? this.dirFd(this.internDir(c.dir), fds) : null;
      if (fd !== null && c?.name !== undefined) {
        try {
          ns = fs.lstatSync(`/proc/self/fd/${fd}/${c.name}`, { bigint: true }).ctimeNs;
        } catch {
          /* gone or unreadable: first, it is dealt with quickly */
        }
      }
      keyed.push([ns, p]);
      if (slice.due()) await slice.yield();
    }
    keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return [...known, ...keyed.map(k => k[1])];
  }

  private noteThrottled(): void {
    const now = new Set(this.events.throttledScopes());
    for (const scope of now) {
      if (this.throttled.has(scope)) continue;
      this.o.metrics.podBudget.inc({ budget: 'event_rate' });
      this.log.warn({ scope, limit: this.o.podEventRate }, 'pod is over its marker event budget: its events wait (only its own PIDs can be delayed)');
    }
    this.throttled = now;
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
        this.log.warn({ [F.markerPath]: escapeText(dir.path), [F.reason]: err.reason }, 'context directory rejected');
        this.o.metrics.rejections.inc({ reason: err.reason });
      }
      this.dirProblems.set(dir.path, `${err.reason}: ${err.message}`);
    }
    fds.set(dir.path, fd);
    return fd;
  }

  /**
   * Lists a dir (or every context dir below a path) for what the records do not
   * know: new marker files (within the pod's budget) and records whose file is
   * gone; known files too with `withKnown` (after lost events: a flood, an
   * overflowed queue, a directory replaced). A resync queues known files on
   * its own, in chunks.
   */
  private scanDir(p: string, fds: Map<string, number | null>, withKnown: boolean): string[] {
    const c = this.o.layout.classify(p);
    const dirs = c ? [c.dir] : this.o.layout.contextDirs().filter(d => d.path === p || d.path.startsWith(p.endsWith('/') ? p : `${p}/`));
    const out: string[] = [];
    if (!c && p !== this.o.layout.watchRoot) {
      // A pod directory appeared or vanished: look again at records under it.
      for (const f of this.records.under(p)) out.push(f);
    }
    for (const d of dirs) {
      const dir = this.internDir(d);
      const fd = this.dirFd(dir, fds);
      const known = this.records.inDir(dir.path);
      const present = new Set<string>();
      this.dirScans++;
      let room = this.o.podMarkerLimit - this.records.countIn(dir.scope);
      let over = 0;
      if (fd !== null) {
        for (const ent of listDir(fd)) {
          if (!isMarkerName(ent.name)) continue;
          const f = path.join(dir.path, ent.name);
          if (known.has(f)) {
            present.add(f);
            if (withKnown) out.push(f);
            continue;
          }
          if (room <= 0) {
            over++;
            continue;
          }
          room--;
          if (ent.valid) out.push(f);
          else this.observe(this.records.add(f, ent.name, dir), { kind: 'unidentified', path: f, reason: 'bad-name: file name is not valid UTF-8' });
          present.add(f);
        }
      }
      this.setOverBudget(dir.path, over);
      for (const f of known) if (!present.has(f)) out.push(f);
    }
    return out;
  }

  private setOverBudget(dirPath: string, n: number): void {
    const before = this.overBudget.get(dirPath) ?? 0;
    if (n > before) this.o.metrics.podBudget.inc({ budget: 'markers' }, n - before);
    if (n > 0 && before === 0) this.log.warn({ [F.markerPath]: escapeText(dirPath), ignored: n, limit: this.o.podMarkerLimit }, 'pod is over its marker budget; the files beyond it are ignored');
    if (n > 0) this.overBudget.set(dirPath, n);
    else this.overBudget.delete(dirPath);
  }

  // ---- one marker -------------------------------------------------------------

  private internDir(d: ContextDir): ContextDir {
    const known = this.dirs.get(d.path);
    if (known) return known;
    this.dirs.set(d.path, d);
    return d;
  }

  /** The record of a path, created if the pod has budget for it (undefined: over budget). */
  private admit(file: string, name: string, dir: ContextDir): MarkerRecord | undefined {
    const r = this.records.get(file);
    if (r) return r;
    if (this.records.countIn(dir.scope) >= this.o.podMarkerLimit) {
      this.setOverBudget(dir.path, (this.overBudget.get(dir.path) ?? 0) + 1);
      return undefined;
    }
    return this.records.add(file, name, dir);
  }

  private reconcileFile(file: string, fds: Map<string, number | null>): void {
    try {
      this.readAndObserve(file, fds);
      const r = this.records.get(file);
      if (r?.error !== undefined) this.records.setError(r, undefined);
    } catch (err) {
      // One marker that fails must not cost the others anything: its decision
      // state is left as it was, and it is retried with the pending markers.
      const r = this.records.get(file);
      const msg = err instanceof Error ? err.message : String(err);
      this.o.metrics.reconcileErrors.inc();
      if (r?.error === undefined) this.log.error({ [F.markerPath]: escapeText(file), [F.err]: msg }, 'reconciling a marker failed; retrying');
      if (r) this.records.setError(r, msg);
    }
  }

  private readAndObserve(file: string, fds: Map<string, number | null>): void {
    const classified = this.o.layout.classify(file);
    if (!classified || classified.name === undefined) return;
    const dir = this.internDir(classified.dir);
    const name = classified.name;
    const rec = this.records.get(file);
    const fd = this.dirFd(dir, fds);
    if (fd === null) return this.drop(file);
    const bad = unsafeNameReason(name);
    if (bad !== undefined) {
      try {
        fs.lstatSync(`/proc/self/fd/${fd}/${name}`);
      } catch {
        return this.drop(file);
      }
      const r = this.admit(file, name, dir);
      return r && this.observe(r, { kind: 'unidentified', path: file, reason: bad });
    }
    const read = readMarkerFile(fd, name, this.o.markerMaxBytes, rec?.identity);
    if (read.kind === 'gone') return this.drop(file);
    const r = rec ?? this.admit(file, name, dir);
    if (!r) return;
    if (read.kind === 'unchanged') {
      if (r.marker !== undefined && r.key !== undefined && this.core.needsEvaluation(file, r.key)) this.observeValid(r, r.marker, r.key, read.identity);
      return;
    }
    r.identity = read.identity;
    if (read.kind === 'rejected') {
      r.marker = undefined;
      return this.observe(
        r,
        read.identity ? { kind: 'rejected', path: file, file: fileId(read.identity), ctimeNs: read.identity.ctimeNs, reason: read.reason } : { kind: 'unidentified', path: file, reason: read.reason },
      );
    }
    const key = `${fileId(read.identity)}|${digest(read.bytes)}`;
    const parsed = parseMarkerBytes(read.bytes, this.o.markerMaxBytes);
    r.key = key;
    if (!parsed.ok) {
      r.marker = undefined;
      return this.observe(r, { kind: 'rejected', path: file, file: fileId(read.identity), ctimeNs: read.identity.ctimeNs, reason: parsed.reason, key });
    }
    r.marker = parsed.marker;
    this.observeValid(r, parsed.marker, key, read.identity);
  }

  private observeValid(r: MarkerRecord, marker: Marker, key: string, identity: FileIdentity): void {
    this.observe(r, {
      kind: 'valid',
      path: r.path,
      file: fileId(identity),
      ctimeNs: identity.ctimeNs,
      key,
      role: roleKey(r.dir.scope, marker),
      evaluation: this.core.needsEvaluation(r.path, key)
        ? evaluateClaim(this.rules, { dir: r.dir, name: r.name, marker, identity, writtenNs: this.core.writtenAt(r.path, key, identity.ctimeNs) })
        : undefined,
    });
  }

  private observe(r: MarkerRecord, obs: Observation): void {
    const rejection = obs.kind === 'valid' ? undefined : obs.reason;
    if (rejection !== undefined && rejection !== r.rejection) {
      this.log.warn({ [F.markerPath]: escapeText(r.path), [F.reason]: rejection }, 'marker rejected');
      this.o.metrics.rejections.inc({ reason: rejection.split(':')[0] as string });
    }
    r.rejection = rejection;
    this.core.observe(obs);
    this.records.syncWaiting(r);
  }

  private drop(file: string): void {
    if (!this.records.delete(file)) return;
    this.core.remove(file);
  }

  // ---- applying decisions -------------------------------------------------------

  /** settle() outside a batch: the directories its rechecks open are closed after it. */
  private settleAlone(): void {
    const fds = new Map<string, number | null>();
    try {
      this.settle(fds);
    } finally {
      for (const fd of fds.values()) if (fd !== null) fs.closeSync(fd);
    }
  }

  /** Settles the core, persists, then applies; re-checks what the core asks for. */
  private settle(fds: Map<string, number | null>): void {
    // Until the startup scan has observed every claim, deciding would favour
    // whatever it happened to read first (the ages may all be unknown).
    if (this.startingUp) return;
    for (let round = 0; round < 16; round++) {
      const s = this.core.settle();
      for (const b of s.bound) this.boundSincePass.add(b.cand.pid);
      for (const b of s.resumed) this.boundSincePass.add(b.cand.pid);
      this.o.store.append(s.persist, { count: this.core.size, all: () => this.core.records() });
      applySettlement(
        {
          procfs: this.o.procfs,
          map: this.map,
          state: this.o.state,
          metrics: this.o.metrics,
          log: this.log,
          nodeName: this.o.nodeName,
          now: this.now,
          record: p => this.records.get(p),
          onState: (p, v) => {
            const r = this.records.get(p);
            if (r) this.records.setView(r, v);
          },
          onIdentityChange: c => {
            for (const l of this.changeListeners) l(c);
          },
        },
        s,
      );
      if (s.recheck.length === 0) break;
      for (const p of s.recheck) this.reconcileFile(p, fds);
    }
    for (const [state, n] of Object.entries(this.records.stateCounts)) this.o.metrics.markers.set({ state }, n);
    this.o.metrics.mapSize.set(this.map.size);
  }

  /** Publishes map and flight changes together (one feed message, one sequence number). */
  private publish(): void {
    const { changes, scopes } = this.map.publish();
    const flight = this.flight.takeChanges();
    if (changes.size === 0 && flight === undefined) return;
    const u: Published = { map: this.map.snapshot(), changes, flight, scopes: new Set([...scopes, ...(flight?.touched ?? [])]) };
    for (const l of this.publishListeners) l(u);
  }

  /** Flight changes alone (an event queued): sent at once, they make plugins wait for this pod. */
  private publishFlight(): void {
    const flight = this.flight.takeChanges();
    if (flight === undefined) return;
    const u: Published = { map: this.map.snapshot(), changes: new Map(), flight, scopes: flight.touched };
    for (const l of this.publishListeners) l(u);
  }

  private hasHotRetry(): boolean {
    const hot = this.now() - PENDING_HOT_MS;
    for (const p of this.records.retry) if ((this.records.get(p)?.changedAt ?? 0) >= hot) return true;
    return false;
  }

  /**
   * Evicts bindings whose process exited or whose PID now belongs to another
   * process. Yields every few milliseconds, like a batch.
   */
  private checkLiveness(full = false): Promise<void> {
    const running = this.livenessRun;
    if (running) return full ? running.then(() => this.checkLiveness(true)) : running;
    const run = this.livenessPass(full);
    this.livenessRun = run;
    void run.finally(() => {
      if (this.livenessRun === run) this.livenessRun = undefined;
    });
    return run;
  }

  /** One pass over the mappings; reads only the PIDs liveness.ts says may have changed, unless `full`. */
  private async livenessPass(full: boolean): Promise<void> {
    const procfs = this.o.procfs;
    this.ownNamespace ??= listsOwnNamespace(procfs);
    const start = await readPassStart(procfs, { full, sameNamespace: this.ownNamespace, now: performance.now() });
    if (this.closed) return;
    const plan = this.liveness.plan(start);
    // Bindings made since the last pass took its list may rest on a start time read before it.
    const fresh = this.boundSincePass;
    this.boundSincePass = new Set();
    const cands = this.core.boundCandidates();
    const slice = new TimeSlice();
    let gone = 0;
    const flush = (): void => {
      if (gone === 0) return;
      this.settleAlone();
      this.publish();
      gone = 0;
    };
    for (const cand of cands) {
      if (fresh.has(cand.pid) || plan.mustRead(cand.pid)) {
        this.livenessReads++;
        const st = procfs.readStartTime(cand.pid);
        if (st !== cand.startTime) {
          this.core.processGone(cand.pid, st);
          gone++;
        }
      }
      if (slice.due(32)) {
        flush();
        await slice.yield();
        if (this.closed) return;
      }
    }
    flush();
    this.liveness.completed(start);
    this.livenessPasses++;
  }
}
