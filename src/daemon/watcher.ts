// inotify through chokidar, pruned to the paths markers can live at, plus
// waiting for a root that does not exist yet (chokidar 5 reports nothing for a
// root whose parent is also missing) and re-arming when the root is deleted.
// Events only mark paths dirty; the reconciler re-reads the files, so a lost
// or reordered event costs latency (healed by the resync), never correctness.
import * as fs from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import type { Layout } from './layout.js';

export interface WatcherOptions {
  readonly layout: Layout;
  readonly onPath: (p: string) => void;
  readonly onError: (err: unknown) => void;
  readonly log: Logger;
  /** How often a missing root is looked for. */
  readonly rootPollMs?: number;
}

export class MarkerWatcher {
  private fsw: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly log: Logger;
  /** For tests and the fault suite: while paused, events are dropped (as on a queue overflow). */
  paused = false;

  constructor(private readonly o: WatcherOptions) {
    this.log = o.log.child({ [F.module]: 'watcher' });
  }

  get armed(): boolean {
    return this.fsw !== undefined;
  }

  async start(): Promise<void> {
    if (this.rootExists()) await this.arm();
    this.poll = setInterval(() => void this.checkRoot(), this.o.rootPollMs ?? 1000);
    this.poll.unref();
  }

  private rootExists(): boolean {
    try {
      return fs.lstatSync(this.o.layout.watchRoot).isDirectory();
    } catch {
      return false;
    }
  }

  private async checkRoot(): Promise<void> {
    if (this.closed) return;
    const exists = this.rootExists();
    if (exists && !this.fsw) {
      await this.arm();
      this.o.onPath(this.o.layout.watchRoot);
    } else if (!exists && this.fsw) {
      this.log.warn({ root: this.o.layout.watchRoot }, 'watch root disappeared; waiting for it to come back');
      await this.disarm();
      this.o.onPath(this.o.layout.watchRoot);
    }
  }

  private async arm(): Promise<void> {
    const layout = this.o.layout;
    const fsw = watch(layout.watchRoot, {
      ignoreInitial: true,
      followSymlinks: false,
      atomic: false,
      depth: layout.markerDepth,
      ignored: (p: string, st?: fs.Stats) => layout.ignore(p, st === undefined ? undefined : st.isFile()),
    });
    const fire = (p: string): void => {
      if (!this.paused) this.o.onPath(p);
    };
    fsw.on('add', fire).on('change', fire).on('unlink', fire).on('addDir', fire);
    fsw.on('unlinkDir', (p: string) => {
      fire(p);
      if (p === layout.watchRoot) void this.checkRoot();
    });
    fsw.on('error', (err: unknown) => this.o.onError(err));
    await new Promise<void>(resolve => fsw.once('ready', () => resolve()));
    this.fsw = fsw;
    this.log.info({ root: layout.watchRoot }, 'watching for markers');
  }

  private async disarm(): Promise<void> {
    const fsw = this.fsw;
    this.fsw = undefined;
    await fsw?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    await this.disarm();
  }
}
