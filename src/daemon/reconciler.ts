// The I/O shell around the decision core (core/decision.ts). It owns every
// piece of mutable daemon state and is its only writer: it reads marker
// files (secure-fs), applies the mapping rules to candidates (rules.ts),
// feeds both to the core, persists what the core decided (decision-store.ts)
// before publishing it (map-publisher.ts), and keeps the enriched context
// files and metrics in step.
//
// Work arrives as "dirty" paths (watcher events, resync, retries) and is done
// in batches, so a burst of markers costs one /proc refresh, not one per
// marker. A long batch yields every few milliseconds and publishes what it
// has, observing new files in order of age, so a partial decision never
// favours a younger claim.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DecisionCore, type Candidate, type ClaimState, type Observation, type Settlement } from '../core/decision.js';
import { escapeText, unsafeNameReason } from '../core/escape.js';
import { parseMarkerBytes, type Marker } from '../core/marker.js';
import type { Mapping, PidMap } from '../core/pid-map.js';
import { selectorValuesFor } from '../core/selectors.js';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import type { DecisionStore } from './decision-store.js';
import { explainPid } from './explain.js';
import type { ContextDir, Layout } from './layout.js';
import { isMarkerName } from './layout.js';
import { MapPublisher, type PublishListener } from './map-publisher.js';
import type { Metrics } from './metrics.js';
import type { Procfs } from './procfs.js';
import { ProcTable } from './proc-table.js';
import { evaluateClaim, type RuleContext } from './rules.js';
import { UnsafePathError, fileId, listDir, openDirNoFollow, readMarkerFile, type FileIdentity } from './secure-fs.js';
import type { StateWriter } from './state-writer.js';

export type MarkerState = ClaimState;

export function roleKey(scope: string, m: Marker): string {
  return `${scope}\u0000${m.tenant}\u0000${m.agent_name}\u0000${m.process_role}`;
}

interface MarkerRecord {
  readonly path: string;
  readonly name: string;
  readonly dir: ContextDir;
  identity: FileIdentity | undefined;
  /** Content of the current version, when it parsed. */
  marker: Marker | undefined;
  key: string | undefined;
  state: MarkerState;
  reason: string;
  hostPid: number | undefined;
  /** When the record last changed state (ms epoch). */
  changedAt: number;
  /** The last attempt to reconcile it threw (retried). */
  error: string | undefined;
  /** Why the current version is rejected (logged and counted once per reason). */
  rejection: string | undefined;
}

/** One marker as the debug endpoint shows it (snake_case, like every JSON output). */
export interface MarkerView {
  readonly path: string;
  readonly state: MarkerState;
  readonly reason: string;
  readonly scope: string;
  readonly pod_uid: string | null;
  readonly host_pid: number | null;
  readonly marker: Marker | null;
  readonly inode: string | null;
  readonly changed_at: string | null;
}

/** A role granted to or taken from a process, for the identity history. */
export interface IdentityChange {
  readonly kind: 'grant' | 'revoke';
  readonly mapping: Mapping;
  readonly inode: string;
  readonly cause: string;
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
  readonly store: DecisionStore;
  readonly nodeName: string | undefined;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Injected for tests. */
  readonly now?: () => number;
}

/** Longest stretch of a batch or a liveness pass without yielding to the event loop. */
const SLICE_MS = 4;
/** A pending marker is retried often for this long after it changed, then only at resync. */
const PENDING_HOT_MS = 60_000;
const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 22);
}

export class Reconciler {
  private readonly records = new Map<string, MarkerRecord>();
  private readonly dirProblems = new Map<string, string>();
  /** One ContextDir object per directory, shared by its records. */
  private dirs = new Map<string, ContextDir>();
  private readonly core: DecisionCore;
  private readonly map = new MapPublisher();
  private readonly table: ProcTable;
  private readonly rules: RuleContext;
  private readonly stateCounts: Record<MarkerState, number> = { mapped: 0, pending: 0, conflict: 0, rejected: 0, stale: 0 };
  /** Paths to re-read at every pending retry: pending, ambiguous, or failed. */
  private readonly retry = new Set<string>();
  /** Paths named by watcher events (a marker may be in flight for them). */
  private readonly dirty = new Set<string>();
  private readonly dirtyDirs = new Set<string>();
  /** Paths queued by a resync (nothing is known to be in flight). */
  private readonly resyncDirty = new Set<string>();
  private readonly resyncDirtyDirs = new Set<string>();
  /** The running batch includes watcher events. */
  private eventBatch = false;
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
  private livenessRun: Promise<void> | undefined;
  private readonly changeListeners: ((c: IdentityChange) => void)[] = [];
  lastResyncMs = 0;
  resyncCount = 0;

  constructor(private readonly o: ReconcilerOptions) {
    this.table = new ProcTable(o.procfs);
    this.core = new DecisionCore({ exclusiveRoles: o.exclusiveRoles });
    this.rules = { procfs: o.procfs, table: this.table, containerContextDir: o.containerContextDir, startSlackNs: BigInt(Math.round(o.startSlackMs * 1e6)) };
    this.log = o.log.child({ [F.module]: 'reconciler' });
    this.now = o.now ?? Date.now;
  }

  // ---- lifecycle ------------------------------------------------------------

  async start(): Promise<void> {
    const loaded = this.o.store.load();
    const sameBoot = loaded.sameBoot;
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
      alive: c => sameBoot && this.o.procfs.readStartTime(c.pid) === c.startTime,
    });
    await this.resync();
    this.core.startupDone();
    this.settle(new Map());
    this.o.store.compact(this.core.records());
    this.map.publish();
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
    await this.resyncing;
    await this.livenessRun;
    this.o.store.close();
    this.releaseWaiters();
  }

  // ---- inputs -----------------------------------------------------------------

  /** A watcher event for a file or directory path. */
  notify(p: string): void {
    const c = this.o.layout.classify(p);
    if (!c) this.dirtyDirs.add(p); // the watch root itself or a pod directory: rescan what is below
    else if (c.name === undefined) this.dirtyDirs.add(c.dir.path);
    else this.dirty.add(path.join(c.dir.path, c.name));
    this.schedule();
  }

  /** Full resync: rescan every context dir and re-read the whole process table. */
  resync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.resyncing ??= (async () => {
      const t0 = performance.now();
      try {
        this.o.procfs.recalibrate();
        await this.table.fullResync();
        for (const dir of this.o.layout.contextDirs()) this.resyncDirtyDirs.add(dir.path);
        for (const rec of this.records.values()) this.resyncDirty.add(rec.path);
        for (const dirPath of this.dirProblems.keys()) this.resyncDirtyDirs.add(dirPath);
        this.retryPending = true;
        await this.checkLiveness();
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
    if (!this.core.holderOf(pid)) return;
    this.core.processGone(pid, cause === 'exited' ? undefined : -1);
    this.settle(new Map());
    this.map.publish();
  }

  // ---- outputs ----------------------------------------------------------------

  /** Called with each new snapshot, after it is published. */
  onPublish(l: PublishListener): void {
    this.map.onPublish(l);
  }

  /** Called with every grant and revocation of a role, after it is persisted. */
  onIdentityChange(l: (c: IdentityChange) => void): void {
    this.changeListeners.push(l);
  }

  snapshot(): PidMap {
    return this.map.snapshot();
  }

  /** Is a marker for `pid` possibly in flight, so that Attest should wait a little? */
  inFlight(pid: number): boolean {
    // A resync alone does not count: it rarely finds anything new, and unknown
    // PIDs (the SPIRE agent's own health checks) must not wait for it.
    if (this.eventBatch || this.dirty.size > 0 || this.dirtyDirs.size > 0) return true;
    let cpid: number | undefined;
    for (const p of this.retry) {
      const rec = this.records.get(p);
      if (rec?.marker === undefined || rec.state !== 'pending') continue;
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
        reason: r.error !== undefined ? `${r.reason} (last attempt failed: ${r.error}; retrying)` : r.reason,
        scope: r.dir.scope,
        pod_uid: r.dir.podUid ?? null,
        host_pid: r.hostPid ?? null,
        marker: r.marker ?? null,
        inode: r.identity ? String(r.identity.ino) : null,
        changed_at: new Date(r.changedAt).toISOString(),
      });
    }
    for (const [p, reason] of this.dirProblems) {
      out.push({ path: p, state: 'rejected', reason, scope: '', pod_uid: null, host_pid: null, marker: null, inode: null, changed_at: null });
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
        await tick();
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

  /** One batch: one /proc refresh, then every queued marker, then the decision. */
  private async runOneBatch(): Promise<void> {
    this.eventBatch = this.dirty.size > 0 || this.dirtyDirs.size > 0;
    const dirs = [...this.dirtyDirs, ...this.resyncDirtyDirs];
    const wanted = new Set([...this.dirty, ...this.resyncDirty]);
    this.dirtyDirs.clear();
    this.dirty.clear();
    this.resyncDirtyDirs.clear();
    this.resyncDirty.clear();
    if (this.retryPending) {
      this.retryPending = false;
      const hot = this.now() - PENDING_HOT_MS;
      for (const p of this.retry) if ((this.records.get(p)?.changedAt ?? 0) >= hot) wanted.add(p);
    }
    this.core.beginBatch();
    this.table.refresh();
    const fds = new Map<string, number | null>();
    try {
      for (const d of dirs) for (const f of this.scanDir(d, fds)) wanted.add(f);
      const ordered = wanted.size > 64 ? this.byAge(wanted, fds) : [...wanted];
      let slice = performance.now();
      for (let i = 0; i < ordered.length; i++) {
        this.reconcileFile(ordered[i] as string, fds);
        if ((i & 63) === 63 && performance.now() - slice > SLICE_MS) {
          this.settle(fds);
          this.map.publish();
          this.releaseWaiters();
          await tick();
          if (this.closed) break;
          slice = performance.now();
        }
      }
      this.settle(fds);
    } finally {
      for (const fd of fds.values()) if (fd !== null) fs.closeSync(fd);
      this.eventBatch = false;
    }
    this.map.publish();
  }

  /**
   * Orders a large batch by ctime, oldest first: a batch that publishes as it
   * goes must never let a younger new claim be decided before an older one.
   */
  private byAge(paths: Set<string>, fds: Map<string, number | null>): string[] {
    const keyed: [bigint, string][] = [];
    for (const p of paths) {
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
    }
    keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return keyed.map(k => k[1]);
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

  /** Lists the marker files of a dir (or of every context dir below a path); queues records of vanished ones. */
  private scanDir(p: string, fds: Map<string, number | null>): string[] {
    const c = this.o.layout.classify(p);
    const dirs = c ? [c.dir] : this.o.layout.contextDirs().filter(d => d.path === p || d.path.startsWith(p.endsWith('/') ? p : `${p}/`));
    if (!c && p !== this.o.layout.watchRoot) {
      // A pod directory appeared or vanished: look again at records under it.
      for (const r of this.records.values()) if (r.path.startsWith(`${p}/`)) this.dirty.add(r.path);
    }
    const out: string[] = [];
    for (const d of dirs) {
      const dir = this.internDir(d);
      const fd = this.dirFd(dir, fds);
      const present = new Set<string>();
      if (fd !== null) {
        for (const ent of listDir(fd)) {
          if (!isMarkerName(ent.name)) continue;
          const f = path.join(dir.path, ent.name);
          present.add(f);
          if (ent.valid) out.push(f);
          else this.observe(this.recordFor(f, ent.name, dir), { kind: 'unidentified', path: f, reason: 'bad-name: file name is not valid UTF-8' });
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

  private recordFor(file: string, name: string, dir: ContextDir): MarkerRecord {
    let r = this.records.get(file);
    if (!r) {
      r = { path: file, name, dir, identity: undefined, marker: undefined, key: undefined, state: 'pending', reason: 'new', hostPid: undefined, changedAt: this.now(), error: undefined, rejection: undefined };
      this.records.set(file, r);
      this.stateCounts.pending++;
    }
    return r;
  }

  private reconcileFile(file: string, fds: Map<string, number | null>): void {
    try {
      this.readAndObserve(file, fds);
      const r = this.records.get(file);
      if (r?.error !== undefined) {
        r.error = undefined;
        this.updateRetry(r);
      }
    } catch (err) {
      // One marker that fails must not cost the others anything: its decision
      // state is left as it was, and it is retried with the pending markers.
      const r = this.records.get(file);
      const msg = err instanceof Error ? err.message : String(err);
      this.o.metrics.reconcileErrors.inc();
      if (r?.error === undefined) this.log.error({ [F.markerPath]: escapeText(file), [F.err]: msg }, 'reconciling a marker failed; retrying');
      if (r) {
        r.error = msg;
        r.changedAt = this.now();
        this.retry.add(r.path);
      }
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
      return this.observe(this.recordFor(file, name, dir), { kind: 'unidentified', path: file, reason: bad });
    }
    const read = readMarkerFile(fd, name, this.o.markerMaxBytes, rec?.identity);
    if (read.kind === 'gone') return this.drop(file);
    const r = rec ?? this.recordFor(file, name, dir);
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
    if (!parsed.ok) {
      r.marker = undefined;
      r.key = key;
      return this.observe(r, { kind: 'rejected', path: file, file: fileId(read.identity), ctimeNs: read.identity.ctimeNs, reason: parsed.reason, key });
    }
    r.marker = parsed.marker;
    r.key = key;
    this.observeValid(r, parsed.marker, key, read.identity);
  }

  private observeValid(r: MarkerRecord, marker: Marker, key: string, identity: FileIdentity): void {
    const obs: Observation = {
      kind: 'valid',
      path: r.path,
      file: fileId(identity),
      ctimeNs: identity.ctimeNs,
      key,
      role: roleKey(r.dir.scope, marker),
      evaluation: this.core.needsEvaluation(r.path, key)
        ? evaluateClaim(this.rules, { dir: r.dir, name: r.name, marker, identity, writtenNs: this.core.writtenAt(r.path, key, identity.ctimeNs) })
        : undefined,
    };
    this.observe(r, obs);
  }

  private observe(r: MarkerRecord, obs: Observation): void {
    const rejection = obs.kind === 'valid' ? undefined : obs.reason;
    if (rejection !== undefined && rejection !== r.rejection) {
      this.log.warn({ [F.markerPath]: escapeText(r.path), [F.reason]: rejection }, 'marker rejected');
      this.o.metrics.rejections.inc({ reason: rejection.split(':')[0] as string });
    }
    r.rejection = rejection;
    this.core.observe(obs);
  }

  private drop(file: string): void {
    const r = this.records.get(file);
    if (!r) return;
    this.core.remove(file);
    this.records.delete(file);
    this.stateCounts[r.state]--;
    this.retry.delete(file);
  }

  // ---- applying decisions -------------------------------------------------------

  /** Settles the core, persists, then applies; re-checks what the core asks for. */
  private settle(fds: Map<string, number | null>): void {
    for (let round = 0; round < 16; round++) {
      const s = this.core.settle();
      this.o.store.append(s.persist, { count: this.core.size, all: () => this.core.records() });
      this.apply(s);
      if (s.recheck.length === 0) return;
      for (const p of s.recheck) this.reconcileFile(p, fds);
    }
  }

  private apply(s: Settlement): void {
    for (const u of s.unbound) {
      const m = this.map.remove(u.cand.pid, u.path);
      if (!m) continue;
      this.o.state.remove(m.hostPid);
      this.o.metrics.evictions.inc({ cause: u.cause });
      this.log.info({ [F.markerPath]: escapeText(u.path), [F.hostPid]: u.cand.pid, [F.reason]: u.cause }, 'mapping removed');
      this.emit('revoke', m, u.cause);
    }
    for (const u of s.suspended) {
      const m = this.map.remove(u.cand.pid, u.path);
      if (!m) continue;
      this.o.state.remove(m.hostPid);
      this.o.metrics.evictions.inc({ cause: 'marker_unreadable' });
      this.log.warn({ [F.markerPath]: escapeText(u.path), [F.hostPid]: u.cand.pid }, 'mapping suspended: the marker cannot be read cleanly; the role stays reserved for this process');
      this.emit('revoke', m, 'marker_unreadable');
    }
    for (const b of s.bound) this.mapOne(b.path, b.cand, b.restored ? 'restored' : 'mapped');
    for (const b of s.resumed) this.mapOne(b.path, b.cand, 'resumed');
    for (const [p, v] of s.states) {
      const r = this.records.get(p);
      if (!r) continue;
      if (r.state !== v.state) {
        this.stateCounts[r.state]--;
        this.stateCounts[v.state]++;
        r.changedAt = this.now();
      }
      r.state = v.state;
      r.reason = v.reason;
      r.hostPid = v.hostPid;
      this.updateRetry(r);
    }
    for (const [state, n] of Object.entries(this.stateCounts)) this.o.metrics.markers.set({ state }, n);
    this.o.metrics.mapSize.set(this.map.size);
  }

  private updateRetry(r: MarkerRecord): void {
    const v = this.core.view(r.path);
    if (r.error !== undefined || v?.retry) this.retry.add(r.path);
    else this.retry.delete(r.path);
  }

  private mapOne(p: string, cand: Candidate, cause: string): void {
    const r = this.records.get(p);
    if (!r?.marker || !r.identity) return;
    const pf = this.o.procfs;
    const m = r.marker;
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
    this.map.set(mapping);
    this.o.state.write(mapping, fileId(r.identity), this.o.nodeName);
    this.log.info(
      { [F.markerPath]: escapeText(r.path), [F.hostPid]: cand.pid, [F.containerPid]: m.container_pid, [F.role]: m.process_role, [F.podUid]: podUid, [F.reason]: cause },
      'marker mapped',
    );
    this.emit('grant', mapping, cause);
  }

  private emit(kind: IdentityChange['kind'], mapping: Mapping, cause: string): void {
    if (this.changeListeners.length === 0) return;
    const r = this.records.get(mapping.markerPath);
    const c: IdentityChange = { kind, mapping, inode: r?.identity ? String(r.identity.ino) : '', cause };
    for (const l of this.changeListeners) {
      try {
        l(c);
      } catch (err) {
        this.log.error({ [F.err]: String(err) }, 'identity change listener failed');
      }
    }
  }

  private hasHotRetry(): boolean {
    const hot = this.now() - PENDING_HOT_MS;
    for (const p of this.retry) if ((this.records.get(p)?.changedAt ?? 0) >= hot) return true;
    return false;
  }

  /**
   * Evicts bindings whose process exited or whose PID now belongs to another
   * process. Yields every few milliseconds, like a batch.
   */
  private checkLiveness(): Promise<void> {
    if (!this.livenessRun) {
      const run = this.livenessPass();
      this.livenessRun = run;
      void run.finally(() => {
        if (this.livenessRun === run) this.livenessRun = undefined;
      });
    }
    return this.livenessRun;
  }

  private async livenessPass(): Promise<void> {
    let slice = performance.now();
    let gone = 0;
    let i = 0;
    const flush = (): void => {
      if (gone === 0) return;
      this.settle(new Map());
      this.map.publish();
      gone = 0;
    };
    for (const [, cand] of [...this.core.bindings()]) {
      const st = this.o.procfs.readStartTime(cand.pid);
      if (st !== cand.startTime) {
        this.core.processGone(cand.pid, st);
        gone++;
      }
      if ((++i & 255) === 0 && performance.now() - slice > SLICE_MS) {
        flush();
        await tick();
        if (this.closed) return;
        slice = performance.now();
      }
    }
    flush();
  }
}
