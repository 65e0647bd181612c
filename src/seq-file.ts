// "<socket>.seq": how new the daemon's state is, per pod. The daemon rewrites
// it in place on every change (see the PidMapper proto, MapUpdate.seq and
// .slots); the plugin reads it before answering from its copy of that state,
// to know whether the copy is as new as the daemon's state for the PID asked
// about. Per pod, so that one pod's churn never makes another pod's answers
// wait for the stream.
//
// Layout: SLOTS + 2 records of 64 bytes. Record 0 holds the daemon's overall
// sequence number; record 1 that of the last change to all scopes at once
// (what a process in no scope depends on); record k (2..SLOTS+1) that of the
// last change to any scope whose name hashes to k (a collision only makes a
// copy look older than it is). A change to all scopes writes every record.
// Each record is written with one pwrite and reads "<instance>:<seq>:<seq>\n":
// the run identity, and the number twice, so that a read that raced a write
// (and saw half of each) is detected and retried.
import * as fs from 'node:fs';

const RECORD_BYTES = 64;
export const SEQ_SLOTS = 1024;
/** The record of changes to all scopes at once. */
export const ALL_SLOT = 1;
/** Records in the file: the overall one, the all-scopes one, one per scope hash. */
export const SEQ_RECORDS = SEQ_SLOTS + 2;

export function seqFilePath(socketPath: string): string {
  return `${socketPath}.seq`;
}

/** The record of a scope (2..SEQ_SLOTS+1): FNV-1a of its name. */
export function slotOf(scope: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < scope.length; i++) {
    h ^= scope.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 2 + (h % SEQ_SLOTS);
}

export function encodeSeq(instance: string, seq: bigint): Buffer {
  const n = seq.toString().padStart(20, '0');
  return Buffer.from(`${instance.padEnd(16, '-').slice(0, 16)}:${n}:${n}\n`.padEnd(RECORD_BYTES, ' '));
}

export function decodeSeq(b: Buffer): { instance: string; seq: bigint } | undefined {
  const m = /^([0-9a-f-]{16}):(\d{20}):(\d{20})\n/.exec(b.toString('latin1'));
  if (!m || m[2] !== m[3]) return undefined;
  return { instance: (m[1] as string).replace(/-+$/, ''), seq: BigInt(m[2] as string) };
}

/** The daemon's side: creates (or takes over) the file and rewrites records in place. */
export class SeqWriter {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    private readonly onError: (err: Error) => void,
  ) {}

  open(mode: number, gid?: number): void {
    try {
      this.fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, mode);
      fs.fchmodSync(this.fd, mode);
      if (gid !== undefined) fs.fchownSync(this.fd, process.getuid?.() ?? 0, gid);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  /** Writes the overall record and the records of `slots` (every record when `slots` is "all"). */
  write(instance: string, seq: bigint, slots: Iterable<number> | 'all'): void {
    if (this.fd === undefined) return;
    try {
      if (slots === 'all') {
        const one = encodeSeq(instance, seq);
        const all = Buffer.alloc(RECORD_BYTES * SEQ_RECORDS);
        for (let k = 0; k < SEQ_RECORDS; k++) one.copy(all, k * RECORD_BYTES);
        fs.writeSync(this.fd, all, 0, all.length, 0);
        return;
      }
      const rec = encodeSeq(instance, seq);
      // Scope records first, the overall one last: a reader that sees the new overall
      // number finds every scope record it covers already written.
      for (const k of slots) fs.writeSync(this.fd, rec, 0, RECORD_BYTES, k * RECORD_BYTES);
      fs.writeSync(this.fd, rec, 0, RECORD_BYTES, 0);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(this.path, { force: true });
  }
}

/** The plugin's side: one open fd, one pread per record read; reopened when the file changes. */
export class SeqReader {
  private fd: number | undefined;
  private readonly buf = Buffer.alloc(RECORD_BYTES);
  /** The last record read and what it said, per slot: most reads see the same bytes again. */
  private readonly last = new Map<number, { bytes: Buffer; value: { instance: string; seq: bigint } }>();

  constructor(readonly path: string) {}

  /** Record `slot` (0: overall) as (instance, seq), or undefined if it cannot be read. */
  read(slot = 0): { instance: string; seq: bigint } | undefined {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.fd === undefined) {
        try {
          this.fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
        } catch {
          return undefined;
        }
      }
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, RECORD_BYTES, slot * RECORD_BYTES);
      } catch {
        this.reopen();
        continue;
      }
      if (n !== RECORD_BYTES) return undefined;
      const prev = this.last.get(slot);
      if (prev && prev.bytes.equals(this.buf)) return prev.value;
      const v = decodeSeq(this.buf);
      if (v) {
        this.last.set(slot, { bytes: Buffer.from(this.buf), value: v });
        return v;
      }
    }
    return undefined;
  }

  /** The daemon may have recreated the file (a restart): open it again next time. */
  reopen(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.last.clear();
  }

  close(): void {
    this.reopen();
  }
}
