// The PID map feed (daemon) and the plugin's local copy of it.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PidMap, type Mapping } from '../../src/core/pid-map.js';
import { MapFeed, type MapUpdateMsg } from '../../src/daemon/map-feed.js';
import { MapCache } from '../../src/plugin/map-cache.js';

function mapping(hostPid: number, startTime: number, role: string): Mapping {
  return Object.freeze({
    hostPid,
    startTime,
    pidNs: 1,
    containerPid: 7,
    podUid: undefined,
    containerId: undefined,
    marker: { agent_name: 'a', tenant: 't', process_role: role, container_pid: 7 },
    markerPath: `/ctx/${role}.json`,
    scope: 'flat:/ctx',
    mappedAt: 0,
    selectors: Object.freeze([`process-role:${role}`]),
  });
}

describe('PidMap snapshots', () => {
  it('apply changes through a small overlay, fold it into a new base when it grows, and never change an old snapshot', () => {
    const live = new Map<number, Mapping>();
    let snap = PidMap.EMPTY;
    const history: [PidMap, number[]][] = [];
    for (let i = 1; i <= 2000; i++) {
      const m = mapping(i, i * 10, `r${i}`);
      live.set(i, m);
      const changes = new Map<number, Mapping | null>([[i, m]]);
      if (i % 3 === 0) {
        live.delete(i - 1);
        changes.set(i - 1, null);
      }
      snap = snap.next(changes, live);
      history.push([snap, [...live.keys()].sort((x, y) => x - y)]);
    }
    for (const [s, keys] of history.filter((_, i) => i % 97 === 0 || i > 1990)) {
      expect(s.size).toBe(keys.length);
      expect([...s.values()].map(m => m.hostPid).sort((x, y) => x - y)).toEqual(keys);
    }
    expect(snap.get(1997)).toBeUndefined(); // removed when 1998 was added
    expect(snap.get(1999)?.hostPid).toBe(1999);
    expect(snap.get(2000)?.marker.process_role).toBe('r2000');
    expect(snap.version).toBe(2000);
  });
});

describe('MapFeed', () => {
  it('sends the whole map first, then only what changed in each version', () => {
    const a = mapping(10, 100, 'a');
    const b = mapping(11, 110, 'b');
    const feed = new MapFeed(new PidMap(1, new Map([[10, a]])), 4026531836);
    const got: MapUpdateMsg[] = [];
    const sub = feed.subscribe(u => {
      got.push(u);
    });
    expect(got[0]).toMatchObject({ full: true, map_version: '1', pid_namespace: '4026531836', removed: [] });
    expect(got[0]!.upserts).toEqual([{ host_pid: 10, start_time: '100', selector_values: ['process-role:a'] }]);

    feed.publish(new PidMap(2, new Map([[10, a], [11, b]])), [11]);
    expect(got[1]).toMatchObject({ full: false, map_version: '2', upserts: [{ host_pid: 11 }], removed: [] });

    const a2 = mapping(10, 105, 'a2'); // same PID, another mapping object
    feed.publish(new PidMap(3, new Map([[10, a2]])), [10, 11]);
    expect(got[2]).toMatchObject({ full: false, upserts: [{ host_pid: 10, start_time: '105' }], removed: [11] });

    sub.close();
    feed.publish(new PidMap(4, new Map()), [10]);
    expect(got).toHaveLength(3);
    expect(feed.size).toBe(0);
  });

  it('sends a heartbeat (an empty delta of the current version) to every subscriber', async () => {
    const feed = new MapFeed(new PidMap(5, new Map()), 1, 20);
    const got: MapUpdateMsg[] = [];
    const sub = feed.subscribe(u => {
      got.push(u);
    });
    feed.start();
    try {
      await new Promise(r => setTimeout(r, 110));
      const beats = got.slice(1);
      expect(beats.length).toBeGreaterThanOrEqual(3);
      for (const b of beats) expect(b).toEqual({ map_version: '5', full: false, upserts: [], removed: [], pid_namespace: '1' });
    } finally {
      sub.close();
      await feed.close();
    }
  });

  // Issue 10, item 6: WatchMap writes ignored backpressure.
  it('stops writing to a subscriber whose stream is full, and resumes with the whole map when it drains', () => {
    const feed = new MapFeed(new PidMap(1, new Map()), 1);
    const got: MapUpdateMsg[] = [];
    let room = 2;
    const sub = feed.subscribe(u => {
      got.push(u);
      return --room > 0;
    });
    const live = new Map<number, Mapping>();
    let snap = new PidMap(1, new Map());
    for (let i = 1; i <= 50; i++) {
      const m = mapping(100 + i, i, `r${i}`);
      live.set(m.hostPid, m);
      snap = snap.next(new Map([[m.hostPid, m]]), live);
      feed.publish(snap, [m.hostPid]);
    }
    expect(got).toHaveLength(2); // the full map, one delta, then nothing while full
    expect(feed.behind).toBe(1);
    room = 100;
    sub.drained();
    expect(got).toHaveLength(3);
    expect(got[2]).toMatchObject({ full: true, map_version: String(snap.version) });
    expect(got[2]!.upserts.map(u => u.host_pid).sort((a, b) => a - b)).toEqual([...live.keys()].sort((a, b) => a - b));
    expect(feed.behind).toBe(0);
    sub.close();
  });
});

class FakeStream extends EventEmitter {
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
    this.emit('error', Object.assign(new Error('cancelled'), { code: 1 }));
  }
}

describe('MapCache (plugin)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  function procDir(starts: Record<number, number>): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-mc-'));
    dirs.push(d);
    for (const [pid, st] of Object.entries(starts)) {
      fs.mkdirSync(path.join(d, pid));
      const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
      fields[22 - 3] = String(st);
      fs.writeFileSync(path.join(d, pid, 'stat'), `${pid} (sleep) ${fields.join(' ')}\n`);
    }
    return d;
  }
  const ownNs = String(fs.readlinkSync('/proc/self/ns/pid').match(/\d+/)![0]);
  const full = (entries: [number, number, string][], ns = ownNs): MapUpdateMsg => ({
    map_version: '1',
    full: true,
    upserts: entries.map(([host_pid, st, role]) => ({ host_pid, start_time: String(st), selector_values: [`process-role:${role}`] })),
    removed: [],
    pid_namespace: ns,
  });

  it('answers a mapped PID only while its start time matches the mapping', () => {
    const streams: FakeStream[] = [];
    const dir = procDir({ 42: 500, 43: 600 });
    const cache = new MapCache(() => {
      const s = new FakeStream();
      streams.push(s);
      return s as never;
    }, dir);
    cache.start();
    expect(cache.lookup(42, 60_000)).toBeUndefined(); // not synced yet
    streams[0]!.emit('data', full([[42, 500, 'a'], [43, 599, 'b']]));
    expect(cache.lookup(42, 60_000)).toEqual(['process-role:a']);
    expect(cache.lookup(43, 60_000)).toBeUndefined(); // PID 43 is another process now
    expect(cache.lookup(44, 60_000)).toBeUndefined(); // unknown
    streams[0]!.emit('data', { map_version: '2', full: false, upserts: [], removed: [42], pid_namespace: ownNs });
    expect(cache.lookup(42, 60_000)).toBeUndefined();
    cache.close();
    expect(streams[0]!.cancelled).toBe(true);
  });

  it('drops the whole copy when the stream breaks, and resyncs on reconnect', async () => {
    const streams: FakeStream[] = [];
    const dir = procDir({ 42: 500 });
    const cache = new MapCache(() => {
      const s = new FakeStream();
      streams.push(s);
      return s as never;
    }, dir);
    cache.start();
    streams[0]!.emit('data', full([[42, 500, 'a']]));
    expect(cache.lookup(42, 60_000)).toEqual(['process-role:a']);
    streams[0]!.emit('error', new Error('daemon went away'));
    expect(cache.ready).toBe(false);
    expect(cache.lookup(42, 60_000)).toBeUndefined();
    await new Promise(r => setTimeout(r, 400));
    expect(streams).toHaveLength(2); // reconnected by itself
    streams[1]!.emit('data', full([[42, 500, 'a']]));
    expect(cache.lookup(42, 60_000)).toEqual(['process-role:a']);
    cache.close();
  });

  // Issue 10, item 3: the plugin kept answering a revoked role while the daemon hung.
  it('stops answering from a copy not heard from within the bound, and resumes on the next message', () => {
    const streams: FakeStream[] = [];
    let now = 1000;
    const cache = new MapCache(
      () => {
        const s = new FakeStream();
        streams.push(s);
        return s as never;
      },
      procDir({ 42: 500 }),
      () => now,
    );
    cache.start();
    streams[0]!.emit('data', full([[42, 500, 'a']]));
    now += 1999;
    expect(cache.lookup(42, 2000)).toEqual(['process-role:a']);
    now += 2;
    expect(cache.lookup(42, 2000)).toBeUndefined(); // the daemon went quiet: hung, or its stream stalled
    streams[0]!.emit('data', { map_version: '1', full: false, upserts: [], removed: [], pid_namespace: ownNs }); // a heartbeat
    expect(cache.lookup(42, 2000)).toEqual(['process-role:a']);
    cache.close();
  });

  it('never uses a copy from a daemon in another PID namespace', () => {
    const streams: FakeStream[] = [];
    const cache = new MapCache(() => {
      const s = new FakeStream();
      streams.push(s);
      return s as never;
    }, procDir({ 42: 500 }));
    cache.start();
    streams[0]!.emit('data', full([[42, 500, 'a']], '1234'));
    expect(cache.lookup(42, 60_000)).toBeUndefined();
    expect(cache.ready).toBe(false);
    cache.close();
  });
});
