// The identity history writer over real files: framing, rotation, a line cut
// short by a previous run, a directory that cannot be written, and the reader
// that the CLI uses. (A full disk, on a real tmpfs, is in test/integration.)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RoleEventInput } from '../../src/core/history.js';
import { HistoryWriter, type HistoryWriterOptions } from '../../src/daemon/history.js';
import { readHistory } from '../../src/daemon/history-files.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-hist-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function grant(pid: number, role = 'writer'): RoleEventInput {
  return {
    event: 'grant',
    cause: 'mapped',
    host_pid: pid,
    start_time: pid,
    container_pid: 7,
    pod_uid: null,
    container_id: null,
    tenant: 'acme',
    agent_name: 'crew',
    process_role: role,
    marker_path: `/ctx/crew-${role}.json`,
    marker_inode: 1,
  };
}

function writer(o: Partial<HistoryWriterOptions> = {}): { w: HistoryWriter; lost: { n: number; first: boolean; err: string }[] } {
  const lost: { n: number; first: boolean; err: string }[] = [];
  const w = new HistoryWriter({ dir, maxBytes: 1 << 20, maxFiles: 3, nodeName: 'node-1', onLost: (n, err, first) => lost.push({ n, first, err: err.message }), ...o });
  return { w, lost };
}

describe('HistoryWriter', () => {
  it('frames the events of a run with daemon_start and daemon_stop, stamped with the time', async () => {
    let now = Date.parse('2026-11-23T14:00:00Z');
    const { w, lost } = writer({ now: () => now });
    w.start();
    now += 1000;
    w.record(grant(100));
    now += 1000;
    w.record({ ...grant(100), event: 'removal', cause: 'exited' });
    await w.close();
    const read = readHistory(dir);
    expect(read.events.map(e => [e.time, e.event])).toEqual([
      ['2026-11-23T14:00:00.000Z', 'daemon_start'],
      ['2026-11-23T14:00:01.000Z', 'grant'],
      ['2026-11-23T14:00:02.000Z', 'removal'],
      ['2026-11-23T14:00:02.000Z', 'daemon_stop'],
    ]);
    expect(read.events[0]).toMatchObject({ daemon_pid: process.pid, node_name: 'node-1' });
    expect(read.skipped).toBe(0);
    expect(lost).toEqual([]);
    w.record(grant(1)); // after close: ignored, never throws
  });

  it('rotates at max bytes, keeps max files, drops the oldest, and never splits a line', async () => {
    const { w, lost } = writer({ maxBytes: 4096, maxFiles: 2 });
    w.start();
    for (let i = 1; i <= 100; i++) {
      w.record(grant(i));
      if (i % 7 === 0) await w.flushed(); // several appends, not one
    }
    await w.close();
    expect(lost).toEqual([]);
    expect(fs.readdirSync(dir).sort()).toEqual(['history.1.jsonl', 'history.2.jsonl', 'history.jsonl']);
    for (const f of fs.readdirSync(dir)) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      expect(Buffer.byteLength(text), f).toBeLessThanOrEqual(4096);
      expect(text.endsWith('\n'), f).toBe(true);
    }
    const read = readHistory(dir);
    expect(read.skipped).toBe(0);
    const pids = read.events.flatMap(e => (e.event === 'grant' ? [e.host_pid] : []));
    // The newest events survive, in order, up to the last one; the oldest were dropped.
    expect(pids.at(-1)).toBe(100);
    expect(pids).toEqual(Array.from({ length: pids.length }, (_, k) => 100 - pids.length + 1 + k));
    expect(pids.length).toBeLessThan(100);
    expect(read.events.at(-1)?.event).toBe('daemon_stop');
  });

  it('with max files 0, starts the current file over at max bytes', async () => {
    const { w } = writer({ maxBytes: 4096, maxFiles: 0 });
    for (let i = 1; i <= 40; i++) w.record(grant(i));
    await w.close();
    expect(fs.readdirSync(dir)).toEqual(['history.jsonl']);
    expect(fs.statSync(path.join(dir, 'history.jsonl')).size).toBeLessThanOrEqual(4096);
  });

  it('terminates a line that a previous run left cut short, so the next event stays readable', async () => {
    fs.writeFileSync(path.join(dir, 'history.jsonl'), '{"time":"2026-11-23T14:00:00.000Z","event":"gra');
    const { w } = writer();
    w.record(grant(5));
    await w.close();
    const read = readHistory(dir);
    expect(read.skipped).toBe(1);
    expect(read.events.map(e => e.event)).toEqual(['grant', 'daemon_stop']);
  });

  it('never throws when the directory cannot be written: counts every lost event, reports the outage once', async () => {
    const file = path.join(dir, 'not-a-dir');
    fs.writeFileSync(file, '');
    const lost: { n: number; first: boolean }[] = [];
    const w = new HistoryWriter({ dir: path.join(file, 'state'), maxBytes: 4096, maxFiles: 1, nodeName: undefined, onLost: (n, _e, first) => lost.push({ n, first }) });
    w.start();
    for (let i = 0; i < 10; i++) {
      expect(() => w.record(grant(i))).not.toThrow();
      if (i % 3 === 0) await w.flushed();
    }
    await w.close();
    expect(lost.reduce((a, l) => a + l.n, 0)).toBe(12); // 10 grants, daemon_start, daemon_stop
    expect(lost.filter(l => l.first)).toHaveLength(1);
    expect(lost[0]?.first).toBe(true);
  });
});

describe('readHistory', () => {
  it('reads rotated files oldest first, and a file it already opened only once', () => {
    const line = (pid: number): string => `${JSON.stringify({ time: '2026-11-23T14:00:00.000Z', ...grant(pid) })}\n`;
    fs.writeFileSync(path.join(dir, 'history.2.jsonl'), line(1));
    fs.writeFileSync(path.join(dir, 'history.1.jsonl'), line(2));
    fs.writeFileSync(path.join(dir, 'history.jsonl'), line(3));
    const pids = (): number[] => readHistory(dir).events.map(e => (e.event === 'grant' ? e.host_pid : 0));
    expect(pids()).toEqual([1, 2, 3]);
    // What a rotation between two opens looks like: the same inode under two names.
    fs.rmSync(path.join(dir, 'history.1.jsonl'));
    fs.linkSync(path.join(dir, 'history.jsonl'), path.join(dir, 'history.1.jsonl'));
    expect(pids()).toEqual([1, 3]);
  });

  it('finds nothing in a directory without history', () => {
    expect(readHistory(dir)).toEqual({ events: [], files: [], skipped: 0 });
  });
});
