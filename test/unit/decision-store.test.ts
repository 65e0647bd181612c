// The decision journal (src/daemon/decision-store.ts) on real files: round
// trips, a torn tail, corruption, another boot, and a disk that fills up.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistedClaim } from '../../src/core/decision.js';
import { DecisionStore, JOURNAL } from '../../src/daemon/decision-store.js';

const dirs: string[] = [];
const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', [m]);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-store-'));
  dirs.push(d);
  return d;
};

const claim = (p: string, over: Partial<PersistedClaim> = {}): PersistedClaim => ({
  path: p,
  key: `1:2:3|${p}`,
  file: '1:2:3',
  role: `pod:x\u0000t\u0000a\u0000${p}`,
  rank: 1,
  age: 1_796_000_000_123_456_789n,
  written: 1_796_000_000_123_456_789n,
  bound: undefined,
  stale: undefined,
  ...over,
});
const live = (records: PersistedClaim[]): { count: number; all: () => PersistedClaim[] } => ({ count: records.length, all: () => records });

describe('DecisionStore', () => {
  it('reads back what it wrote: compaction, then appended changes, last line wins, forgotten paths gone', () => {
    const dir = tmp();
    const errors: string[] = [];
    const a = new DecisionStore(dir, 'boot-1', (e, op) => errors.push(`${op}: ${e.message}`));
    expect(a.load()).toEqual({ records: [], lost: true, sameBoot: false });
    a.compact([claim('/p/a.json'), claim('/p/b.json')]);
    a.append(new Map([['/p/a.json', claim('/p/a.json', { bound: { pid: 42, startTime: 4242 } })], ['/p/b.json', null]]), live([]));
    a.append(new Map([['/p/c.json', claim('/p/c.json', { stale: true, rank: 0, age: 0n })]]), live([]));
    a.close();
    const b = new DecisionStore(dir, 'boot-1', () => undefined).load();
    expect(b.lost).toBe(false);
    expect(b.sameBoot).toBe(true);
    expect(b.records.map(r => r.path).sort()).toEqual(['/p/a.json', '/p/c.json']);
    expect(b.records.find(r => r.path === '/p/a.json')).toEqual(claim('/p/a.json', { bound: { pid: 42, startTime: 4242 } }));
    expect(b.records.find(r => r.path === '/p/c.json')?.stale).toBe(true);
    expect(errors).toEqual([]);
    expect(fs.statSync(path.join(dir, JOURNAL)).mode & 0o777).toBe(0o600);
  });

  it('tells another boot apart: its bindings are not of this boot', () => {
    const dir = tmp();
    const a = new DecisionStore(dir, 'boot-1', () => undefined);
    a.compact([claim('/p/a.json', { bound: { pid: 1, startTime: 2 } })]);
    a.close();
    const b = new DecisionStore(dir, 'boot-2', () => undefined).load();
    expect(b).toMatchObject({ lost: false, sameBoot: false });
    expect(b.records).toHaveLength(1);
  });

  it('ignores a torn last line (a crash mid-append) and keeps the rest', () => {
    const dir = tmp();
    const a = new DecisionStore(dir, 'b', () => undefined);
    a.compact([claim('/p/a.json')]);
    a.close();
    fs.appendFileSync(path.join(dir, JOURNAL), '{"p":"/p/b.json","k":"1:2:3|x","f":"1:2');
    const b = new DecisionStore(dir, 'b', () => undefined).load();
    expect(b).toMatchObject({ lost: false, tornTail: true });
    expect(b.records.map(r => r.path)).toEqual(['/p/a.json']);
  });

  it('moves a corrupt journal aside and says the state is lost', () => {
    const dir = tmp();
    const a = new DecisionStore(dir, 'b', () => undefined);
    a.compact([claim('/p/a.json'), claim('/p/b.json')]);
    a.close();
    const lines = fs.readFileSync(path.join(dir, JOURNAL), 'utf8').split('\n');
    lines[1] = lines[1]!.replace('"n":1', '"n":7');
    fs.writeFileSync(path.join(dir, JOURNAL), lines.join('\n'));
    const b = new DecisionStore(dir, 'b', () => undefined).load();
    expect(b.lost).toBe(true);
    expect(b.records).toEqual([]);
    expect(b.problem).toMatch(/is corrupt \(line 2: bad priority\); moved to .*decisions\.jsonl\.corrupt-/);
    expect(fs.existsSync(path.join(dir, JOURNAL))).toBe(false);
    expect(fs.readdirSync(dir).filter(n => n.startsWith(`${JOURNAL}.corrupt-`))).toHaveLength(1);
  });

  it('removes a journal it could not keep complete (disk full), so that a restart fails safe, and rewrites it whole when there is room', () => {
    const dir = tmp();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', dir]);
    mounts.push(dir);
    const errors: string[] = [];
    const s = new DecisionStore(dir, 'b', (e, op) => errors.push(`${op}: ${e.message}`));
    const records = [claim('/p/a.json')];
    s.compact(records);
    const filler = path.join(dir, 'filler');
    try {
      fs.writeFileSync(filler, Buffer.alloc(64 << 10));
    } catch {
      /* ENOSPC: the disk is full now */
    }
    const big = Array.from({ length: 200 }, (_, i) => claim(`/p/${'x'.repeat(40)}-${i}.json`));
    s.append(new Map(big.map(r => [r.path, r])), live([...records, ...big]));
    expect(errors.join('\n')).toMatch(/ENOSPC/);
    expect(fs.existsSync(path.join(dir, JOURNAL))).toBe(false);
    fs.rmSync(filler);
    s.append(new Map(), live(records)); // next change: rewritten whole
    s.close();
    const back = new DecisionStore(dir, 'b', () => undefined).load();
    expect(back.lost).toBe(false);
    expect(back.records.map(r => r.path)).toEqual(['/p/a.json']);
  });
  describe('compaction in the background', () => {
    // 10 live records, each round rewrites all 10 (age + 1): after a compaction the journal has
    // 11 lines, after k rounds 11 + 10k; it must be compacted past 2 × 10 + 2,048 lines (k = 206).
    const live10 = (): { records: PersistedClaim[]; grow(s: DecisionStore, rounds: number): void } => {
      const records = Array.from({ length: 10 }, (_, i) => claim(`/p/${i}.json`));
      return {
        records,
        grow(s, rounds) {
          for (let i = 0; i < rounds; i++) {
            for (let j = 0; j < records.length; j++) records[j] = { ...records[j]!, age: records[j]!.age + 1n };
            s.append(new Map(records.map(r => [r.path, r])), live(records));
          }
        },
      };
    };
    const lineCount = (f: string): number => fs.readFileSync(f, 'utf8').split('\n').length - 1;
    /** A store with the 10 live records just compacted, collecting its errors. */
    const compacted = (): { dir: string; file: string; errors: string[]; s: DecisionStore; l: ReturnType<typeof live10> } => {
      const dir = tmp();
      const errors: string[] = [];
      const s = new DecisionStore(dir, 'b', (e, what) => errors.push(`${what}: ${e.message}`));
      const l = live10();
      s.compact(l.records);
      return { dir, file: path.join(dir, JOURNAL), errors, s, l };
    };

    it('leaves the journal in place (and appended to) until the rewrite, with what changed meanwhile, replaces it', async () => {
      const { dir, file, errors, s, l } = compacted();
      const ino = fs.statSync(file).ino;
      l.grow(s, 206); // the last append starts the rewrite
      // The append that crossed the threshold returned without rewriting anything.
      expect(fs.statSync(file).ino).toBe(ino);
      expect(lineCount(file)).toBe(11 + 2060);
      // Changes made while the rewrite runs go to the journal at once...
      l.records[0] = claim('/p/0.json', { bound: { pid: 7, startTime: 70 } });
      s.append(new Map([['/p/0.json', l.records[0]], ['/p/1.json', null]]), live(l.records));
      expect(lineCount(file)).toBe(11 + 2062);
      await s.idle;
      // ...and into the rewrite, which has replaced the journal.
      expect(fs.statSync(file).ino).not.toBe(ino);
      expect(lineCount(file)).toBe(11 + 2);
      expect(fs.readdirSync(dir)).toEqual([JOURNAL]);
      s.append(new Map([['/p/2.json', null]]), live(l.records)); // appends go to the new journal
      s.close();
      const back = new DecisionStore(dir, 'b', () => undefined).load();
      expect(back.lost).toBe(false);
      const byPath = new Map(back.records.map(r => [r.path, r]));
      expect([...byPath.keys()].sort()).toEqual(['/p/0.json', ...[3, 4, 5, 6, 7, 8, 9].map(i => `/p/${i}.json`)]);
      expect(byPath.get('/p/0.json')?.bound).toEqual({ pid: 7, startTime: 70 });
      expect(byPath.get('/p/3.json')?.age).toBe(claim('x').age + 206n);
      expect(errors).toEqual([]);
    });

    it('a rewrite that fails leaves the journal complete, is reported, and is tried again only after more growth', async () => {
      const { dir, file, errors, s, l } = compacted();
      const blocker = `${file}.${process.pid}.bg1.tmp`;
      fs.mkdirSync(blocker); // the first rewrite's file cannot be created
      l.grow(s, 206);
      await s.idle;
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/background rewrite .* failed; the journal is unchanged/);
      expect(lineCount(file)).toBe(11 + 2060);
      l.grow(s, 1);
      await s.idle;
      expect(lineCount(file)).toBe(11 + 2070); // not tried again at once
      l.grow(s, 203); // 2,040 lines since the failure: still not
      await s.idle;
      expect(lineCount(file)).toBe(11 + 4100);
      l.grow(s, 1); // past 2,048 more: tried again, as bg2
      await s.idle;
      expect(lineCount(file)).toBe(11);
      expect(errors).toHaveLength(1);
      s.close();
      fs.rmdirSync(blocker);
      expect(new DecisionStore(dir, 'b', () => undefined).load().records.map(r => r.age)).toEqual(l.records.map(r => r.age));
    });

    it('close() during a rewrite abandons it; the journal stays complete and the next start removes leftovers', async () => {
      const { dir, file, s, l } = compacted();
      l.grow(s, 206);
      s.close();
      await s.idle;
      expect(lineCount(file)).toBe(11 + 2060);
      fs.writeFileSync(`${file}.4242.bg3.tmp`, 'half a rewrite a crash left');
      const back = new DecisionStore(dir, 'b', () => undefined).load();
      expect(back.records.map(r => r.age)).toEqual(l.records.map(r => r.age));
      expect(fs.readdirSync(dir)).toEqual([JOURNAL]);
    });
  });
});
