// Opening attacker-writable paths without following symlinks.
//
// Node has no openat(2), so a directory is walked one component at a time
// through /proc/self/fd/N: each step opens "<fd of the parent>/<name>" with
// O_NOFOLLOW|O_DIRECTORY, so a symlink anywhere below the trusted base fails
// with ELOOP (or ENOTDIR), and a component swapped after it was opened cannot
// redirect later steps: /proc/self/fd/N names the directory we hold, not a path.
import * as fs from 'node:fs';
import { decodeName } from '../core/escape.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;

export class UnsafePathError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/**
 * What the kernel says about a file, to the nanosecond. Device, inode and
 * birth time name the file for its whole life (a workload cannot set any of
 * them; the birth time tells a reused inode number apart); ctime moves on
 * every change, content or metadata, and cannot be set back.
 */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly birthNs: bigint;
  readonly ctimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly size: number;
}

export function sameIdentity(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.birthNs === b.birthNs &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

/** The file's identity for its whole life: device, inode, birth time. */
export function fileId(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.birthNs}`;
}

function identityOf(st: fs.BigIntStats): FileIdentity {
  return { dev: st.dev, ino: st.ino, birthNs: st.birthtimeNs, ctimeNs: st.ctimeNs, mtimeNs: st.mtimeNs, size: Number(st.size) };
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

export function fdPath(fd: number, name: string): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/**
 * Opens `base` (trusted: configured by the operator; followed normally) and
 * then each of `components` with O_NOFOLLOW. Returns a directory fd the caller
 * must close; undefined when something does not exist.
 * Throws UnsafePathError when a component is a symlink or not a directory.
 */
export function openDirNoFollow(base: string, components: readonly string[]): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(base, O_RDONLY | O_DIRECTORY);
  } catch (err) {
    if (code(err) === 'ENOENT' || code(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  for (const comp of components) {
    if (comp === '' || comp === '.' || comp === '..' || comp.includes('/')) {
      fs.closeSync(fd);
      throw new UnsafePathError('bad-path', `invalid path component "${comp}"`);
    }
    let next: number;
    try {
      next = fs.openSync(fdPath(fd, comp), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      fs.closeSync(fd);
      const c = code(err);
      if (c === 'ENOENT') return undefined;
      if (c === 'ELOOP') throw new UnsafePathError('symlink-dir', `path component "${comp}" is a symlink`);
      if (c === 'ENOTDIR') {
        throw new UnsafePathError('symlink-dir', `path component "${comp}" is not a directory (or is a symlink)`);
      }
      throw err;
    }
    fs.closeSync(fd);
    fd = next;
  }
  return fd;
}

/**
 * Names of the entries of an open directory, read as bytes: a name that is not
 * valid UTF-8 comes back escaped and flagged (it could not be opened by its
 * decoded name, and must not be shown raw).
 */
export function listDir(dirFd: number): { name: string; valid: boolean }[] {
  return fs.readdirSync(`/proc/self/fd/${dirFd}`, { encoding: 'buffer' }).map(decodeName);
}

export type MarkerRead =
  | { kind: 'ok'; identity: FileIdentity; bytes: Buffer }
  | { kind: 'unchanged'; identity: FileIdentity }
  | { kind: 'gone' }
  | { kind: 'rejected'; reason: string; identity?: FileIdentity };

/**
 * Reads a marker file named `name` in the open directory `dirFd` as hostile
 * input: never follows a symlink, never opens anything but a regular file
 * (a FIFO or device node is rejected from lstat, before open), refuses hard
 * links (nlink != 1: a link to a file elsewhere on the filesystem), and reads
 * at most `maxBytes` (a larger file is rejected from fstat without a read).
 * When `known` has the same identity, the content is not read again.
 */
export function readMarkerFile(dirFd: number, name: string, maxBytes: number, known?: FileIdentity): MarkerRead {
  const p = fdPath(dirFd, name);
  let lst: fs.BigIntStats;
  try {
    lst = fs.lstatSync(p, { bigint: true });
  } catch (err) {
    if (code(err) === 'ENOENT') return { kind: 'gone' };
    throw err;
  }
  if (lst.isSymbolicLink()) return { kind: 'rejected', reason: 'symlink', identity: identityOf(lst) };
  if (!lst.isFile()) return { kind: 'rejected', reason: 'not-regular-file', identity: identityOf(lst) };
  if (lst.nlink === 1n && lst.size <= BigInt(maxBytes) && sameIdentity(identityOf(lst), known)) {
    return { kind: 'unchanged', identity: identityOf(lst) };
  }
  let fd: number;
  try {
    fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  } catch (err) {
    const c = code(err);
    if (c === 'ENOENT') return { kind: 'gone' };
    if (c === 'ELOOP') return { kind: 'rejected', reason: 'symlink' };
    return { kind: 'rejected', reason: `open-failed: ${c ?? 'error'}` };
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    const identity = identityOf(st);
    if (!st.isFile() || st.ino !== lst.ino) return { kind: 'rejected', reason: 'not-regular-file', identity };
    if (st.nlink !== 1n) return { kind: 'rejected', reason: 'hard-link', identity };
    if (st.size > BigInt(maxBytes)) return { kind: 'rejected', reason: `too-large: ${st.size} bytes, limit ${maxBytes}`, identity };
    if (sameIdentity(identity, known)) return { kind: 'unchanged', identity };
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let len = 0;
    while (len < buf.length) {
      const n = fs.readSync(fd, buf, len, buf.length - len, len);
      if (n === 0) break;
      len += n;
    }
    if (len > maxBytes) return { kind: 'rejected', reason: `too-large: grew past ${maxBytes} bytes`, identity };
    return { kind: 'ok', identity, bytes: buf.subarray(0, len) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Device and inode of `<procRoot><dir>/<name>` where procRoot is /proc/H/root:
 * the file as process H sees it. The root itself is a magic link and is
 * followed; every component of `dir` and the final name must not be a
 * symlink (an absolute symlink inside a container would otherwise resolve
 * against the daemon's root). Returns a reason string when it cannot be seen.
 */
export function statThroughRoot(
  procRoot: string,
  dir: string,
  name: string,
): { dev: bigint; ino: bigint } | { problem: string } {
  let fd: number | undefined;
  try {
    fd = openDirNoFollow(procRoot, dir.split('/').filter(c => c !== ''));
  } catch (err) {
    if (err instanceof UnsafePathError) return { problem: `context dir not safe in process root: ${err.message}` };
    const c = code(err);
    if (c === 'EACCES' || c === 'ESRCH' || c === 'EPERM') return { problem: `process root not readable: ${c}` };
    throw err;
  }
  if (fd === undefined) return { problem: 'context dir not visible to the process' };
  try {
    const st = fs.lstatSync(fdPath(fd, name), { bigint: true });
    if (!st.isFile()) return { problem: 'marker not a regular file in the process root' };
    return { dev: st.dev, ino: st.ino };
  } catch (err) {
    if (code(err) === 'ENOENT') return { problem: 'marker not visible to the process' };
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}
