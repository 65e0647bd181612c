// The identity history's files in state_dir, shared by the writer (daemon) and
// the reader (`hexr-pid-mapper history`, which reads them directly so that it
// works while the daemon is down):
//
//   history.jsonl      current file, appended to
//   history.1.jsonl    newest rotated file
//   ...
//   history.N.jsonl    oldest kept (N = history_max_files)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseEventLine, type HistoryEvent } from '../core/history.js';

export const HISTORY_FILE = 'history.jsonl';

/** history.jsonl for 0, history.{i}.jsonl for a rotated file. */
export function historyFileName(i: number): string {
  return i === 0 ? HISTORY_FILE : `history.${i}.jsonl`;
}

export interface HistoryRead {
  /** Every event, oldest first. */
  readonly events: HistoryEvent[];
  /** Files read, oldest first. */
  readonly files: string[];
  /** Lines that are not events (a line cut short by a full disk or a crash). */
  readonly skipped: number;
}

/**
 * Reads every history file of `dir`. The files are opened newest first and a
 * file already opened (same device and inode) is skipped: a rotation by the
 * daemon between two opens then neither loses nor repeats a file.
 */
export function readHistory(dir: string): HistoryRead {
  const fds: { name: string; fd: number }[] = [];
  const seen = new Set<string>();
  try {
    for (let i = 0; i <= 1000; i++) {
      const name = historyFileName(i);
      let fd: number;
      try {
        fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && i > 0) break;
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // no current file (yet), rotated ones may exist
        throw err;
      }
      const st = fs.fstatSync(fd);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id) || !st.isFile()) {
        fs.closeSync(fd);
        continue;
      }
      seen.add(id);
      fds.push({ name, fd });
    }
    const events: HistoryEvent[] = [];
    let skipped = 0;
    for (const { fd } of [...fds].reverse()) {
      for (const line of fs.readFileSync(fd, 'utf8').split('\n')) {
        if (line === '') continue;
        const e = parseEventLine(line);
        if (e) events.push(e);
        else skipped++;
      }
    }
    return { events, files: fds.map(f => path.join(dir, f.name)).reverse(), skipped };
  } finally {
    for (const { fd } of fds) fs.closeSync(fd);
  }
}
