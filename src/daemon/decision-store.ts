// Persistence of the decision state (core/decision.ts) in state_dir, so that a
// restart or a crash decides exactly as the daemon would have decided had it
// kept running: which claim is bound to which process, each claim version's
// age, and which versions are stale.
//
// One append-only JSON-lines journal, `decisions.jsonl`: a header line, then one
// line per change of a marker path's record (last line wins; {"p":…,"x":1}
// forgets a path). It is appended synchronously before the decisions it
// records are published, and rewritten compactly at startup and when it
// has grown to several times the live state. That rewrite runs in the
// background (a few megabytes at 10,000 claims would block the event loop for
// tens of milliseconds): the journal keeps being appended to meanwhile, the
// changes made since the snapshot are appended to the rewrite too, and only
// then does the rewrite replace the journal, so the file on disk is complete
// at every moment.
//
// Fail-safe rules:
//  - no journal: "lost" (first start, or state_dir wiped): the core then maps
//    nothing whose priority it cannot prove (see core/decision.ts);
//  - a corrupt journal (a bad header, or a bad line before the last) is moved
//    aside as decisions.jsonl.corrupt-<time>, reported loudly, and treated as
//    lost; a torn last line (a crash mid-append) is ignored;
//  - a journal written during another boot keeps its ages and stale marks,
//    but no binding from it survives (those processes are gone);
//  - when an append fails (disk full, I/O error), the journal is no longer
//    complete: it is removed, so that a restart fails safe instead of trusting
//    it, and rewritten whole at the next successful write.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PersistedClaim } from '../core/decision.js';

export const JOURNAL = 'decisions.jsonl';
const FORMAT = 1;
/** Compact when the journal has this many more lines than live records (and at least this many). */
const COMPACT_SLACK = 2048;
/** Records encoded per write of a background compaction (one event-loop turn each). */
const COMPACT_CHUNK = 500;

/** A background compaction: what was appended since its snapshot. */
interface Compaction {
  readonly pending: string[];
  pendingLines: number;
}

export interface LoadedState {
  readonly records: PersistedClaim[];
  /** No usable state: first start, state_dir lost, or a corrupt journal. */
  readonly lost: boolean;
  /** The journal was written during this boot (bindings may be alive). */
  readonly sameBoot: boolean;
  /** Why the state is lost, when it is not simply absent. */
  readonly problem?: string;
  /** A torn last line was ignored. */
  readonly tornTail?: boolean;
}

interface Line {
  p?: unknown;
  x?: unknown;
  k?: unknown;
  f?: unknown;
  r?: unknown;
  n?: unknown;
  a?: unknown;
  w?: unknown;
  b?: unknown;
  s?: unknown;
}

function encode(r: PersistedClaim): string {
  const o: Record<string, unknown> = { p: r.path, k: r.key, f: r.file, r: r.role, n: r.rank, a: String(r.age), w: String(r.written) };
  if (r.bound) o['b'] = [r.bound.pid, r.bound.startTime];
  if (r.stale) o['s'] = 1;
  return JSON.stringify(o);
}

const isNs = (v: unknown): v is string => typeof v === 'string' && /^\d{1,30}$/.test(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** One journal line back to a record (null: the path is forgotten); throws on anything malformed. */
export function decodeLine(text: string): { path: string; record: PersistedClaim | null } {
  const o = JSON.parse(text) as Line;
  if (typeof o !== 'object' || o === null || typeof o.p !== 'string' || o.p === '') throw new Error('no path');
  if (o.x === 1) return { path: o.p, record: null };
  if (typeof o.k !== 'string' || typeof o.f !== 'string' || typeof o.r !== 'string') throw new Error('bad key, file or role');
  if ((o.n !== 0 && o.n !== 1) || !isNs(o.a) || !isNs(o.w)) throw new Error('bad priority');
  let bound: PersistedClaim['bound'];
  if (o.b !== undefined) {
    if (!Array.isArray(o.b) || o.b.length !== 2 || !isPosInt(o.b[0]) || !isPosInt(o.b[1])) throw new Error('bad binding');
    bound = { pid: o.b[0], startTime: o.b[1] };
  }
  if (o.s !== undefined && o.s !== 1) throw new Error('bad stale mark');
  return {
    path: o.p,
    record: { path: o.p, key: o.k, file: o.f, role: o.r, rank: o.n, age: BigInt(o.a), written: BigInt(o.w), bound, stale: o.s === 1 ? true : undefined },
  };
}

export class DecisionStore {
  private fd: number | undefined;
  private lines = 0;
  /** The journal on disk is incomplete: rewrite it whole at the next chance. */
  private broken = false;
  private compaction: Compaction | undefined;
  /** After a failed background compaction, the journal length at which to try again. */
  private retryCompactionAt = 0;
  private compactions = 0;
  /** Settles when the background compaction in progress (if any) is over; for tests and close. */
  idle: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly bootId: string,
    /** A write or rename failed: `what` says which, and what became of the journal. */
    private readonly onError: (err: Error, what: string) => void,
  ) {}

  get file(): string {
    return path.join(this.dir, JOURNAL);
  }

  /** Reads the journal (never throws; a problem is reported in the result). */
  load(): LoadedState {
    this.removeLeftoverTmps();
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], lost: true, sameBoot: false };
      return { records: [], lost: true, sameBoot: false, problem: `cannot read ${this.file}: ${(err as Error).message}` };
    }
    const lines = text.split('\n');
    const torn = lines.at(-1) !== '';
    if (!torn) lines.pop();
    const corrupt = (why: string): LoadedState => {
      const aside = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        fs.renameSync(this.file, aside);
      } catch (err) {
        this.onError(err as Error, `moving the corrupt ${this.file} aside failed`);
      }
      return { records: [], lost: true, sameBoot: false, problem: `${this.file} is corrupt (${why}); moved to ${aside}` };
    };
    let header: { hexr_decisions?: unknown; boot_id?: unknown };
    try {
      header = JSON.parse(lines[0] ?? '') as typeof header;
    } catch {
      return corrupt('no header');
    }
    if (header?.hexr_decisions !== FORMAT || typeof header.boot_id !== 'string') return corrupt('unknown header');
    const byPath = new Map<string, PersistedClaim>();
    for (let i = 1; i < lines.length; i++) {
      try {
        const { path: p, record } = decodeLine(lines[i] as string);
        if (record) byPath.set(p, record);
        else byPath.delete(p);
      } catch (err) {
        if (torn && i === lines.length - 1) break; // a crash mid-append: the change was never published
        return corrupt(`line ${i + 1}: ${(err as Error).message}`);
      }
    }
    return { records: [...byPath.values()], lost: false, sameBoot: header.boot_id === this.bootId, tornTail: torn };
  }

  /** Rewrites the journal with exactly these records, now, and keeps it open for appends. */
  compact(records: Iterable<PersistedClaim>): void {
    this.compaction = undefined; // a rewrite in the background, if any, is superseded
    const tmp = this.tmpFile();
    const out: string[] = [this.header()];
    for (const r of records) out.push(encode(r));
    this.closeFd();
    try {
      fs.writeFileSync(tmp, `${out.join('\n')}\n`, { mode: 0o600 });
      this.replaceWith(tmp, out.length);
      this.broken = false;
    } catch (err) {
      this.removeTmp(tmp);
      this.fail(err as Error, `rewriting ${this.file}`);
    }
  }

  /**
   * Rewrites the journal in the background from a snapshot of the live
   * records; appends made meanwhile go to the journal as usual and, at the
   * end, to the rewrite. If anything fails, the journal stays as it was
   * (complete, only longer).
   */
  private compactInBackground(records: PersistedClaim[]): void {
    const job: Compaction = { pending: [], pendingLines: 0 };
    this.compaction = job;
    const tmp = `${this.file}.${process.pid}.bg${++this.compactions}.tmp`;
    const run = async (): Promise<void> => {
      const fh = await fs.promises.open(tmp, 'wx', 0o600);
      try {
        let chunk = [this.header()];
        for (const r of records) {
          chunk.push(encode(r));
          if (chunk.length >= COMPACT_CHUNK) {
            await fh.appendFile(`${chunk.join('\n')}\n`);
            chunk = [];
            if (this.compaction !== job) return;
          }
        }
        if (chunk.length > 0) await fh.appendFile(`${chunk.join('\n')}\n`);
        if (this.compaction !== job || this.fd === undefined || this.broken) return;
        // From here on, synchronous: no append can come in between.
        fs.writeFileSync(fh.fd, job.pending.join(''));
        if (fs.statSync(tmp).ino !== fs.fstatSync(fh.fd).ino) throw new Error(`${tmp} was removed or replaced during the rewrite`);
        this.replaceWith(tmp, 1 + records.length + job.pendingLines);
      } finally {
        await fh.close();
      }
    };
    this.idle = run()
      .catch((err: unknown) => {
        this.retryCompactionAt = this.lines + COMPACT_SLACK;
        this.onError(err as Error, `the background rewrite of ${this.file} failed; the journal is unchanged (complete, only longer)`);
      })
      .finally(() => {
        if (this.compaction === job) this.compaction = undefined;
        this.removeTmp(tmp);
      });
  }

  /**
   * Appends changes (null: forget the path). `live` gives every live record
   * and their number, for a compaction when the journal has grown to several
   * times that or could not be appended to.
   */
  append(changes: ReadonlyMap<string, PersistedClaim | null>, live: { readonly count: number; all(): Iterable<PersistedClaim> }): void {
    if (changes.size === 0 && !this.broken) return;
    if (this.broken || this.fd === undefined) {
      this.compact(live.all());
      return;
    }
    let text = '';
    for (const [p, r] of changes) text += `${r === null ? JSON.stringify({ p, x: 1 }) : encode(r)}\n`;
    const buf = Buffer.from(text);
    try {
      // A full disk may take part of a write without an error: that is a failure too.
      const n = fs.writeSync(this.fd, buf);
      if (n !== buf.length) throw Object.assign(new Error(`ENOSPC: wrote ${n} of ${buf.length} bytes`), { code: 'ENOSPC' });
      this.lines += changes.size;
    } catch (err) {
      this.fail(err as Error, `appending to ${this.file}`);
      return;
    }
    if (this.compaction) {
      this.compaction.pending.push(text);
      this.compaction.pendingLines += changes.size;
    } else if (this.lines > 2 * live.count + COMPACT_SLACK && this.lines >= this.retryCompactionAt) {
      this.compactInBackground([...live.all()]);
    }
  }

  /** Stops appending; a background compaction in progress is abandoned (the journal is complete as it is). */
  close(): void {
    this.compaction = undefined;
    this.closeFd();
  }

  private header(): string {
    return JSON.stringify({ hexr_decisions: FORMAT, boot_id: this.bootId });
  }

  private tmpFile(): string {
    return `${this.file}.${process.pid}.tmp`;
  }

  /** Renames `tmp` over the journal and opens that for appends (until the rename, the old journal stays open). */
  private replaceWith(tmp: string, lines: number): void {
    fs.renameSync(tmp, this.file);
    this.closeFd();
    this.fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND);
    this.lines = lines;
  }

  /** Rewrites a crash interrupted (never the journal: a rewrite only replaces it by a rename). */
  private removeLeftoverTmps(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (n.startsWith(`${JOURNAL}.`) && n.endsWith('.tmp')) this.removeTmp(path.join(this.dir, n));
  }

  private removeTmp(tmp: string): void {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* the directory itself is the problem */
    }
  }

  private closeFd(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  /** The journal can no longer be trusted to be complete: remove it (a restart then fails safe). */
  private fail(err: Error, op: string): void {
    this.broken = true;
    this.compaction = undefined;
    this.closeFd();
    this.onError(err, `${op} failed; the journal is removed so that a restart fails safe, and rewritten whole at the next change`);
    try {
      fs.rmSync(this.file, { force: true });
    } catch (e) {
      this.onError(e as Error, `removing the incomplete ${this.file} failed`);
    }
  }
}
