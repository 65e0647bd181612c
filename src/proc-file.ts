// Reading small kernel-generated files (/proc): shared by the daemon's /proc
// readers and the plugin's start-time check.
import * as fs from 'node:fs';

const BUF = Buffer.allocUnsafe(64 * 1024);

/** The process (or file) is gone or not ours to read: a normal answer, not an error. */
export function gone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ESRCH' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM';
}

/** Reads a small kernel-generated file in one go (proc files report size 0). */
export function readSmall(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
  try {
    let len = 0;
    for (;;) {
      const n = fs.readSync(fd, BUF, len, BUF.length - len, null);
      if (n === 0) break;
      len += n;
      if (len === BUF.length) break;
    }
    return BUF.toString('latin1', 0, len);
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}
