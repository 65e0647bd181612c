// inotify, in two parts:
//  - chokidar watches the directory *structure* (the watch root, pod
//    directories, volume directories), pruned to the paths where context
//    directories can appear; it never descends into a context directory;
//  - each context directory gets one plain fs.watch, whose events name the
//    file that changed. One inotify watch per directory, none per file, and
//    no directory re-read per event (chokidar would re-read the directory
//    and keep a watcher per file: ~13 KB and one inotify watch per marker).
// A missing root is polled for (chokidar 5 reports nothing for a root whose
// parent is also missing) and re-armed when deleted. Events only mark paths
// dirty; the reconciler re-reads the files, so a lost or reordered event
// costs latency (healed by the resync), never correctness.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import { escapeText } from '../core/escape.js';
import { isMarkerName, type Layout } from './layout.js';

export interface WatcherOptions {
  readonly layout: Layout;
  readonly onPath: (p: string) => void;
  readonly onError: (err: unknown) => void;
  readonly log: Logger;
  /** How often a missing root, and context dirs without a watcher, are looked for. */
  readonly rootPollMs?: number;
  /** Longest wait for chokidar's initial scan ("ready"); after it the daemon goes on (resyncs heal). */
  readonly readyTimeoutMs?: number;
  /** chokidar's watch(); injected for tests. */
  readonly watchFn?: typeof watch;
  /** Events per second on one context directory beyond which it is left unwatched for a while. */
  readonly floodEventsPerSecond?: number;
  /** Called when a directory floods (metrics). */
  readonly onFlood?: (dir: string) => void;
}

const FLOOD_EVENTS_PER_SECOND = 2000;
const FLOOD_PAUSE_MS = 5000;

const READY_TIMEOUT_MS = 10_000;

export class MarkerWatcher {
  private fsw: FSWatcher | undefined;
  private armedFlag = false;
  private readonly dirWatchers = new Map<string, { w: fs.FSWatcher; ino: string; window: number; events: number }>();
  /** Context directories not watched for a while because they flooded us with events. */
  private readonly flooded = new Set<string>();
  private readonly floodTimers = new Set<NodeJS.Timeout>();
  private rootIno = '';
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly log: Logger;
  /** For tests and the fault suite: while paused, events are dropped (as on a queue overflow). */
  paused = false;

  constructor(private readonly o: WatcherOptions) {
    this.log = o.log.child({ [F.module]: 'watcher' });
  }

  /** Watching: the root exists and its context directories have watchers. */
  get armed(): boolean {
    return this.armedFlag;
  }

  /** Context directories with a watcher (for /debug/status). */
  get watchedDirs(): number {
    return this.dirWatchers.size;
  }

  async start(): Promise<void> {
    if (this.isDir(this.o.layout.watchRoot)) await this.arm();
    this.poll = setInterval(() => void this.tick(), this.o.rootPollMs ?? 1000);
    this.poll.unref();
  }

  private isDir(p: string): boolean {
    return this.dirIno(p) !== undefined;
  }

  /**
   * Identity of a real (not symlinked) directory, or undefined: inode plus
   * birth time, since a directory deleted and recreated often gets the same
   * inode number back.
   */
  private dirIno(p: string): string | undefined {
    try {
      const st = fs.lstatSync(p);
      return st.isDirectory() ? `${st.ino}:${st.birthtimeMs}` : undefined;
    } catch {
      return undefined;
    }
  }

  private ticking: Promise<void> | undefined;

  /** Checks the root and context dirs; one check at a time. */
  private tick(): Promise<void> {
    this.ticking ??= this.check().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async check(): Promise<void> {
    if (this.closed) return;
    const ino = this.dirIno(this.o.layout.watchRoot);
    const exists = ino !== undefined;
    if (exists && this.armedFlag && ino !== this.rootIno) {
      // Deleted and recreated between two ticks: the watches hold the old inode.
      this.log.warn({ root: this.o.layout.watchRoot }, 'watch root was replaced; re-arming');
      await this.disarm();
      await this.arm();
      this.o.onPath(this.o.layout.watchRoot);
    } else if (exists && !this.armedFlag) {
      await this.arm();
      this.o.onPath(this.o.layout.watchRoot);
    } else if (!exists && this.armedFlag) {
      this.log.warn({ root: this.o.layout.watchRoot }, 'watch root disappeared; waiting for it to come back');
      await this.disarm();
      this.o.onPath(this.o.layout.watchRoot);
    } else if (exists) {
      this.attachAll();
    }
  }

  /** Attaches a watcher to every context directory that has none; drops those that are gone. */
  private attachAll(): void {
    const want = new Map<string, string>();
    for (const { path: d } of this.o.layout.contextDirs()) {
      const ino = this.dirIno(d);
      if (ino !== undefined) want.set(d, ino);
    }
    const replaced = new Set<string>();
    for (const [d, { ino }] of [...this.dirWatchers]) {
      if (want.get(d) !== ino) {
        this.detach(d); // gone, or replaced by another directory
        if (want.has(d)) replaced.add(d);
      }
    }
    for (const d of want.keys()) if (!this.attach(d) && replaced.has(d)) this.o.onPath(d);
  }

  /** Watches `dir`; true when it did and reported the directory for a scan. */
  private attach(dir: string): boolean {
    if (this.closed || this.dirWatchers.has(dir) || this.flooded.has(dir)) return false;
    const ino = this.dirIno(dir);
    if (ino === undefined) return false; // never a symlinked dir
    const self = path.basename(dir);
    const entry = { w: undefined as unknown as fs.FSWatcher, ino, window: 0, events: 0 };
    try {
      entry.w = fs.watch(dir, { persistent: false }, (_event, filename) => {
        if (this.paused) return;
        if (this.flood(dir, entry)) return;
        const name = filename?.toString();
        if (name !== undefined && name !== self) {
          // A marker name: that file changed. Anything else (temp files, sub-
          // directories) cannot be a marker and costs nothing: a rename of a
          // temp file to its marker name is reported under the marker name.
          if (isMarkerName(name)) this.o.onPath(path.join(dir, name));
          return;
        }
        // The directory itself (reported under its own name): deleted or moved
        // (IN_DELETE_SELF / IN_MOVE_SELF) is dealt with at once, not at the next
        // poll; anything else (a touch or chmod of it, IN_ATTRIB, which a pod
        // can do at will) changes nothing and costs no rescan.
        if (this.dirIno(dir) !== this.dirWatchers.get(dir)?.ino) {
          this.o.onPath(dir);
          void this.tick();
        }
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.o.onError(err);
      return false;
    }
    entry.w.on('error', err => {
      this.detach(dir);
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EPERM') this.o.onError(err);
    });
    this.dirWatchers.set(dir, entry);
    // Whatever was written before this watch began raised no event: scan it
    // once (whoever attached it: chokidar's report, the poll, a flood's end).
    if (this.paused) return false;
    this.o.onPath(dir);
    return true;
  }

  /**
   * A directory flooded with events (a pod creating and deleting files as
   * fast as it can) stops being watched for FLOOD_PAUSE_MS: every event costs
   * the daemon's event loop, and that must not be another pod's problem. It
   * is rescanned when it is watched again (and at every resync meanwhile).
   */
  private flood(dir: string, e: { window: number; events: number }): boolean {
    const now = performance.now();
    if (now - e.window > 1000) {
      e.window = now;
      e.events = 0;
    }
    if (++e.events <= (this.o.floodEventsPerSecond ?? FLOOD_EVENTS_PER_SECOND)) return false;
    this.detach(dir);
    this.flooded.add(dir);
    this.o.onFlood?.(dir);
    this.log.warn({ dir: escapeText(dir), pause_ms: FLOOD_PAUSE_MS }, 'context directory flooded with events: not watched for a while, rescanned after');
    const t = setTimeout(() => {
      this.flooded.delete(dir);
      if (!this.attach(dir)) this.o.onPath(dir); // also when it is gone meanwhile
    }, FLOOD_PAUSE_MS);
    t.unref();
    this.floodTimers.add(t);
    return true;
  }

  private detach(dir: string): void {
    const e = this.dirWatchers.get(dir);
    this.dirWatchers.delete(dir);
    e?.w.close();
  }

  private async arm(): Promise<void> {
    const layout = this.o.layout;
    if (layout.markerDepth > 0) await this.armStructure();
    this.armedFlag = true;
    this.rootIno = this.dirIno(layout.watchRoot) ?? '';
    this.attachAll();
    this.log.info({ root: layout.watchRoot, context_dirs: this.dirWatchers.size }, 'watching for markers');
  }

  /**
   * chokidar, for the directories above the context directories (kubelet
   * layout). It stops one level above them (depth markerDepth - 1): it sees a
   * context directory come and go, and never reads inside it, where a pod may
   * create and delete files at will. The flat layout has no structure to
   * watch: its one directory is polled for and watched directly.
   */
  private async armStructure(): Promise<void> {
    const layout = this.o.layout;
    const fsw = (this.o.watchFn ?? watch)(layout.watchRoot, {
      ignoreInitial: true,
      followSymlinks: false,
      atomic: false,
      depth: layout.markerDepth - 1,
      // Structure only: nothing inside a context directory (the per-directory watcher has that).
      ignored: (p: string, st?: fs.Stats) => {
        const c = layout.classify(p);
        if (c?.name !== undefined) return true;
        return layout.ignore(p, st === undefined ? undefined : st.isFile());
      },
    });
    const onDir = (p: string): void => {
      const c = layout.classify(p);
      const scanned = c !== undefined && c.name === undefined && this.attach(c.dir.path); // reported it already
      if (!this.paused && !scanned) this.o.onPath(p);
    };
    fsw.on('addDir', onDir).on('add', p => !this.paused && this.o.onPath(p));
    fsw.on('unlinkDir', (p: string) => {
      const c = layout.classify(p);
      if (c && c.name === undefined) this.detach(c.dir.path);
      if (!this.paused) this.o.onPath(p);
      if (p === layout.watchRoot) void this.tick();
    });
    fsw.on('error', (err: unknown) => this.o.onError(err));
    // chokidar's initial scan can stall (a huge or pathological tree): never
    // wait for it forever. Events it reports later still arrive, and the
    // periodic resync covers whatever it missed.
    const ms = this.o.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const ready = await new Promise<boolean>(resolve => {
      const t = setTimeout(() => resolve(false), ms);
      fsw.once('ready', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!ready) {
      this.o.onError(new Error(`the directory watcher did not finish its initial scan of ${layout.watchRoot} within ${ms} ms; going on (resyncs cover what it misses)`));
    }
    this.fsw = fsw;
  }

  private async disarm(): Promise<void> {
    const fsw = this.fsw;
    this.fsw = undefined;
    this.armedFlag = false;
    for (const d of [...this.dirWatchers.keys()]) this.detach(d);
    await fsw?.close();
  }

  /** Context directories left unwatched for flooding (for /debug/status). */
  get floodedDirs(): number {
    return this.flooded.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.floodTimers) clearTimeout(t);
    if (this.poll) clearInterval(this.poll);
    await this.disarm();
  }
}
