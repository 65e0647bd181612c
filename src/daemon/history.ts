// Identity history writer: appends one JSON line per grant and removal of a
// role (see core/history.ts for the event type) to state_dir/history.jsonl,
// rotating it at `maxBytes` into history.1.jsonl ... history.{maxFiles}.jsonl.
//
// It must never get in the way of attestation:
// - record() only formats a line and queues it; the file is written later, by
//   the libuv thread pool (fs.promises), one append at a time, so the event
//   loop that answers Attest never waits for a disk;
// - record() never throws; a line that cannot be written (disk full, directory
//   not writable, queue over its bound) is counted through `onLost` and the
//   writer carries on: the next append tries again;
// - a line cut short by a full disk is terminated before the next append, so
//   one broken line never swallows the next event (readers skip it).
import * as fsp from 'node:fs/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeEvent, type DaemonEvent, type RoleEventInput } from '../core/history.js';
import { historyFileName } from './history-files.js';

export interface HistoryWriterOptions {
  readonly dir: string;
  /** Size at which history.jsonl is rotated (> 0). */
  readonly maxBytes: number;
  /** Rotated files kept; 0: the current file is simply started over. */
  readonly maxFiles: number;
  readonly nodeName: string | undefined;
  /**
   * `lost` events could not be appended. `first` is true for the first loss
   * after a success (or since start), so the caller logs once per outage.
   */
  readonly onLost: (lost: number, err: Error, first: boolean) => void;
  /** The history is writable again after losses. */
  readonly onRecovered?: () => void;
  /** Injected for tests. */
  readonly now?: () => number;
}

/** Lines waiting for the disk beyond this are dropped (and counted). */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;

export class HistoryWriter {
  private file: fsp.FileHandle | undefined;
  private size = 0;
  private queue: string[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  /** The file does not end with a newline (an append was cut short). */
  private brokenLine = false;
  private failing = false;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: HistoryWriterOptions) {
    this.now = o.now ?? Date.now;
  }

  private get current(): string {
    return path.join(this.o.dir, historyFileName(0));
  }

  /** Records the daemon's start. Never throws, never waits for the disk. */
  start(): void {
    this.daemonEvent('daemon_start');
  }

  /** Queues one grant or removal. Never throws, never waits for the disk. */
  record(e: RoleEventInput): void {
    if (this.closed) return;
    try {
      this.enqueue(encodeEvent({ time: new Date(this.now()).toISOString(), ...e }));
    } catch (err) {
      this.lost(1, err as Error);
    }
  }

  /** Records the daemon's stop, writes out what is queued, closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.daemonEvent('daemon_stop');
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
  }

  /** Resolves once everything queued so far has been written (or counted as lost). */
  async flushed(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private daemonEvent(event: DaemonEvent['event']): void {
    const e: DaemonEvent = { time: new Date(this.now()).toISOString(), event, daemon_pid: process.pid, node_name: this.o.nodeName ?? null };
    this.enqueue(encodeEvent(e));
  }

  private enqueue(line: string): void {
    if (this.queuedBytes + line.length > MAX_QUEUED_BYTES) {
      this.lost(1, new Error(`more than ${MAX_QUEUED_BYTES} bytes waiting for the disk`));
      return;
    }
    this.queue.push(line);
    this.queuedBytes += line.length;
    this.flushing ??= this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      await new Promise<void>(resolve => setImmediate(resolve)); // gather a burst into one append
      while (this.queue.length > 0) {
        const lines = this.queue;
        this.queue = [];
        this.queuedBytes = 0;
        await this.append(lines);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async append(lines: string[]): Promise<void> {
    let i = 0;
    while (i < lines.length) {
      let n = 0;
      try {
        const file = await this.open();
        // As many lines as fit below maxBytes; at least one into an empty file.
        let bytes = 0;
        while (i + n < lines.length) {
          const len = Buffer.byteLength(lines[i + n] as string);
          if (this.size + bytes + len > this.o.maxBytes && (this.size > 0 || n > 0)) break;
          bytes += len;
          n++;
        }
        if (n === 0) {
          await this.rotate();
          continue;
        }
        await this.write(file, lines.slice(i, i + n).join(''));
        i += n;
        if (this.failing) {
          this.failing = false;
          this.o.onRecovered?.();
        }
      } catch (err) {
        // Lost: the lines of this chunk not completely written, or, when no
        // chunk was formed (the file cannot be opened), the whole batch.
        const written = (err as { linesWritten?: number }).linesWritten ?? 0;
        const lost = n > 0 ? n - Math.min(written, n) : lines.length - i;
        i += n > 0 ? n : lost;
        this.lost(lost, err as Error);
        await this.file?.close().catch(() => undefined);
        this.file = undefined;
      }
    }
  }

  private async open(): Promise<fsp.FileHandle> {
    if (this.file) return this.file;
    await fsp.mkdir(this.o.dir, { recursive: true, mode: 0o755 });
    const file = await fsp.open(this.current, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o640);
    try {
      const st = await file.stat();
      this.size = st.size;
      if (st.size > 0) {
        // A previous run may have stopped in the middle of a line.
        const last = Buffer.alloc(1);
        const r = await fsp.open(this.current, 'r');
        try {
          await r.read(last, 0, 1, st.size - 1);
        } finally {
          await r.close();
        }
        this.brokenLine = last[0] !== 0x0a;
      }
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
    this.file = file;
    return file;
  }

  /** Appends `chunk`; on failure the error carries `linesWritten`, the lines of `chunk` that did reach the file whole. */
  private async write(file: fsp.FileHandle, chunk: string): Promise<void> {
    const prefix = this.brokenLine ? 1 : 0;
    const buf = Buffer.from(prefix ? `\n${chunk}` : chunk);
    let off = 0;
    while (off < buf.length) {
      let written: number;
      try {
        ({ bytesWritten: written } = await file.write(buf, off, buf.length - off));
      } catch (err) {
        if (off > 0) this.brokenLine = buf[off - 1] !== 0x0a;
        let linesWritten = 0;
        for (let k = prefix; k < off; k++) if (buf[k] === 0x0a) linesWritten++;
        throw Object.assign(err as Error, { linesWritten });
      }
      off += written;
      this.size += written;
      if (written === 0) throw new Error('write made no progress');
    }
    this.brokenLine = false;
  }

  /** history.jsonl → history.1.jsonl → ... → history.{maxFiles}.jsonl (the oldest is dropped). */
  private async rotate(): Promise<void> {
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    const dir = this.o.dir;
    const ignoreMissing = (err: NodeJS.ErrnoException): void => {
      if (err.code !== 'ENOENT') throw err;
    };
    for (let k = this.o.maxFiles - 1; k >= 1; k--) {
      await fsp.rename(path.join(dir, historyFileName(k)), path.join(dir, historyFileName(k + 1))).catch(ignoreMissing);
    }
    if (this.o.maxFiles >= 1) await fsp.rename(this.current, path.join(dir, historyFileName(1))).catch(ignoreMissing);
    else await fsp.rm(this.current, { force: true });
    this.size = 0;
    this.brokenLine = false;
  }

  private lost(n: number, err: Error): void {
    const first = !this.failing;
    this.failing = true;
    try {
      this.o.onLost(n, err, first);
    } catch {
      /* a failing callback must not break the writer */
    }
  }
}
