// Start times of processes, for the plugin's hot path: the mapping of a PID
// holds only while field 22 of /proc/PID/stat is the one it was made with.
//
// Opening /proc/PID/stat costs three system calls per Attest; the plugin keeps
// the file open for the PIDs it was asked about lately (up to MAX_OPEN) and
// reads it again with one pread. An open /proc/PID file belongs to that very
// process, not to its number: once the process is gone, reads fail (ESRCH),
// even if the number was given to another process since; the file is then
// closed and the PID looked up afresh by path. So a cached file can only make
// a check fail, never pass for the wrong process.
import * as fs from 'node:fs';
import { parseStatStartTime } from '../core/procparse.js';

const MAX_OPEN = 512;
const BUF_BYTES = 1024;

export class StatReader {
  /** PID -> open fd of /proc/PID/stat, least recently used first. */
  private readonly open = new Map<number, number>();
  private readonly buf = Buffer.alloc(BUF_BYTES);

  constructor(private readonly procDir = '/proc') {}

  /** Field 22 of /proc/PID/stat as a decimal string, or undefined (gone, unreadable). */
  startTime(pid: number): string | undefined {
    const cached = this.open.get(pid);
    if (cached !== undefined) {
      this.open.delete(pid);
      const v = this.readFd(cached);
      if (v !== undefined) {
        this.open.set(pid, cached); // most recently used
        return v;
      }
      fs.closeSync(cached);
    }
    let fd: number;
    try {
      fd = fs.openSync(`${this.procDir}/${pid}/stat`, 'r');
    } catch {
      return undefined;
    }
    const v = this.readFd(fd);
    if (v === undefined) {
      fs.closeSync(fd);
      return undefined;
    }
    this.open.set(pid, fd);
    if (this.open.size > MAX_OPEN) {
      const [oldPid, oldFd] = this.open.entries().next().value as [number, number];
      this.open.delete(oldPid);
      fs.closeSync(oldFd);
    }
    return v;
  }

  close(): void {
    for (const fd of this.open.values()) fs.closeSync(fd);
    this.open.clear();
  }

  private readFd(fd: number): string | undefined {
    let n: number;
    try {
      n = fs.readSync(fd, this.buf, 0, BUF_BYTES, 0);
    } catch {
      return undefined;
    }
    if (n <= 0) return undefined;
    const v = parseStatStartTime(this.buf.toString('latin1', 0, n));
    return v === undefined ? undefined : String(v);
  }
}
