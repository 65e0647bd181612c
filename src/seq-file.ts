// "<socket>.seq": the daemon's run identity and the sequence number of what
// it knows (see the PidMapper proto, MapUpdate.seq), rewritten in place on
// every change; the plugin reads it on each Attest it would answer from its
// copy, to know whether the copy is as new as the daemon's state.
//
// One fixed-size record, written with one pwrite at offset 0: the sequence
// number appears twice, so a read that raced a write (and saw half of each)
// is detected and retried.
import * as fs from 'node:fs';

const RECORD_BYTES = 64;

export function seqFilePath(socketPath: string): string {
  return `${socketPath}.seq`;
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

/** The daemon's side: creates (or takes over) the file and rewrites it in place. */
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

  write(instance: string, seq: bigint): void {
    if (this.fd === undefined) return;
    try {
      fs.writeSync(this.fd, encodeSeq(instance, seq), 0, RECORD_BYTES, 0);
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

/** The plugin's side: one open fd, one pread per check; reopened when the file changes. */
export class SeqReader {
  private fd: number | undefined;
  private readonly buf = Buffer.alloc(RECORD_BYTES);

  constructor(readonly path: string) {}

  /** The daemon's current (instance, seq), or undefined if it cannot be read. */
  read(): { instance: string; seq: bigint } | undefined {
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
        n = fs.readSync(this.fd, this.buf, 0, RECORD_BYTES, 0);
      } catch {
        this.reopen();
        continue;
      }
      const v = n === RECORD_BYTES ? decodeSeq(this.buf) : undefined;
      if (v) return v;
    }
    return undefined;
  }

  /** The daemon may have recreated the file (a restart): open it again next time. */
  reopen(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  close(): void {
    this.reopen();
  }
}
