// The PID map feed (daemon) and the plugin's local copy of it.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PidMap, type Mapping } from '../../src/core/pid-map.js';
import { FULL_PART, MapFeed, type FeedOptions, type FeedSubscription, type MapUpdateMsg } from '../../src/daemon/map-feed.js';
import type { Published } from '../../src/daemon/reconciler.js';
import { MapCache } from '../../src/plugin/map-cache.js';
import { ALL_SLOT, slotOf } from '../../src/seq-file.js';
import { eventually } from '../helpers/env.js';

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

/** A published update as the reconciler makes it. */
function update(map: PidMap, changed: number[], flight?: Published['flight']): Published {
  return { map, changes: new Map(changed.map(pid => [pid, map.get(pid) ?? null])), flight, scopes: new Set(['flat:/ctx', ...(flight?.touched ?? [])]) };
}

function newFeed(map: PidMap, extra: Partial<FeedOptions> = {}): { feed: MapFeed; seqs: bigint[] } {
  const seqs: bigint[] = [];
  const feed = new MapFeed(map, {
    pidNs: 4026531836,
    layout: 'kubelet',
    flatScope: '',
    instance: 'abcdef0123456789',
    flight: () => ({ pending: new Map([['pod:p1', [7]]]), busy: ['pod:p2'] }),
    onSeq: (_i, s) => seqs.push(s),
    ...extra,
  });
  return { feed, seqs };
}

describe('MapFeed', () => {
  it('sends the whole state first, then only what changed, each change with the next sequence number written first', () => {
    const a = mapping(10, 100, 'a');
    const b = mapping(11, 110, 'b');
    const { feed, seqs } = newFeed(new PidMap(1, new Map([[10, a]])));
    feed.start(); // writes the current sequence number (0) to the sequence file
    const got: MapUpdateMsg[] = [];
    const sub = feed.subscribe((u, written) => {
      if (written) setImmediate(written); // as a stream does once it has sent the message
      got.push(u);
    });
    expect(got[0]).toMatchObject({
      full: true,
      map_version: '1',
      pid_namespace: '4026531836',
      removed: [],
      instance: 'abcdef0123456789',
      seq: '0',
      layout: 'kubelet',
      pending: [{ scope: 'pod:p1', container_pids: [7] }],
      busy_scopes: ['pod:p2'],
    });
    expect(got[0]!.upserts).toEqual([{ host_pid: 10, start_time: '100', selector_values: ['process-role:a'], scope: 'flat:/ctx' }]);
    expect(got[0]!.more).toBe(true); // one part of the whole state, then the closing part
    expect(got[1]).toMatchObject({ full: false, more: false, upserts: [], removed: [] });

    feed.publish(update(new PidMap(2, new Map([[10, a], [11, b]])), [11]));
    expect(got[2]).toMatchObject({ full: false, more: false, map_version: '2', upserts: [{ host_pid: 11 }], removed: [], seq: '1', pending: [], busy_scopes: ['pod:p2'] });

    const a2 = mapping(10, 105, 'a2'); // same PID, another mapping object
    feed.publish(update(new PidMap(3, new Map([[10, a2]])), [10, 11], { pending: new Map([['pod:p1', []]]), busy: [], touched: new Set(['pod:p1', 'pod:p2']) }));
    expect(got[3]).toMatchObject({ upserts: [{ host_pid: 10, start_time: '105' }], removed: [11], seq: '2', pending: [{ scope: 'pod:p1', container_pids: [] }], busy_scopes: [] });
    expect(seqs).toEqual([0n, 1n, 2n]);

    sub.close();
    feed.publish(update(new PidMap(4, new Map()), [10]));
    expect(got).toHaveLength(4);
    expect(feed.size).toBe(0);
    expect(seqs).toEqual([0n, 1n, 2n, 3n]); // the sequence moves whether or not anyone listens
    void feed.close();
  });

  it('sends a heartbeat (an empty delta with the current sequence number) to every subscriber', async () => {
    const { feed } = newFeed(new PidMap(5, new Map()), { heartbeatMs: 20 });
    const got: MapUpdateMsg[] = [];
    const sub = feed.subscribe((u, written) => {
      if (written) setImmediate(written); // as a stream does once it has sent the message
      got.push(u);
    });
    feed.start();
    try {
      await eventually(() => got.length >= 5, 5000, 'three heartbeats'); // a timer, however late
      const beats = got.slice(2);
      expect(beats.length).toBeGreaterThanOrEqual(3);
      for (const b of beats) expect(b).toMatchObject({ map_version: '5', full: false, upserts: [], removed: [], seq: '0', pending: [] });
    } finally {
      sub.close();
      await feed.close();
    }
  });

  it('sends a large state in parts across event-loop turns, then what changed meanwhile: the copy ends equal to the map', async () => {
    const live = new Map<number, Mapping>();
    for (let i = 0; i < 1234; i++) live.set(1000 + i, mapping(1000 + i, i, `r${i}`));
    let snap = new PidMap(1, new Map(live));
    const { feed } = newFeed(snap);
    const got: MapUpdateMsg[] = [];
    feed.subscribe((u, written) => {
      if (written) setImmediate(written); // as a stream does once it has sent the message
      got.push(u);
    });
    expect(got).toHaveLength(1); // one part now, the rest later
    expect(got[0]).toMatchObject({ full: true, more: true });
    // Changes while the parts go out: one removed, one replaced, one added; a delta is not sent in between.
    const changes = new Map<number, Mapping | null>([[1000, null], [2000, mapping(2000, 1, 'x')], [1500, mapping(1500, 99, 'r500b')]]);
    live.delete(1000);
    live.set(2000, changes.get(2000)!);
    live.set(1500, changes.get(1500)!);
    snap = snap.next(changes, live);
    feed.publish(update(snap, [...changes.keys()]));
    await eventually(() => got.at(-1)!.more === false, 5000, 'the last part');
    expect(got.map(m => [m.full, m.more])).toEqual([[true, true], [false, true], [false, true], [false, false]]);
    const copy = new Map<number, string>();
    for (const m of got) {
      if (m.full) copy.clear();
      for (const id of m.removed) copy.delete(id);
      for (const e of m.upserts) copy.set(e.host_pid, e.start_time);
    }
    expect(copy).toEqual(new Map([...live.values()].map(m => [m.hostPid, String(m.startTime)])));
    expect(got.at(-1)!.seq).toBe('1'); // the closing part carries the sequence number of now
  });

  // Bench scenario 7: grpc-js takes 16 messages before write() says "full", and
  // serialized all the parts it held in one go: a 60-130 ms stall at 11,000 mappings.
  /** A subscriber to a whole state of `parts` parts whose stream keeps each write callback for the test to call; write() returns `room`. */
  function heldStream(parts: number, room: boolean): { got: MapUpdateMsg[]; pending: (() => void)[]; sub: FeedSubscription } {
    const live = new Map<number, Mapping>();
    for (let i = 0; i < parts * FULL_PART; i++) live.set(1000 + i, mapping(1000 + i, i, `r${i}`));
    const { feed } = newFeed(new PidMap(1, new Map(live)));
    const got: MapUpdateMsg[] = [];
    const pending: (() => void)[] = [];
    const sub = feed.subscribe((u, written) => {
      got.push(u);
      if (written) pending.push(written);
      return room;
    });
    return { got, pending, sub };
  }

  it('sends each part of the whole state only once the last one has left the stream\'s buffer', async () => {
    const { got, pending } = heldStream(3, true); // the stream always says it has room
    await new Promise(r => setTimeout(r, 30));
    expect(got).toHaveLength(1); // the first part is still in the stream's buffer
    pending.shift()!();
    expect(got).toHaveLength(1); // the next one waits for a turn of the event loop
    await new Promise(r => setImmediate(r));
    expect(got).toHaveLength(2);
    pending.shift()!();
    await eventually(() => got.at(-1)!.more === false, 5000, 'the last part');
    expect(got.map(m => [m.full, m.more])).toEqual([[true, true], [false, true], [false, true], [false, false]]);
    expect(pending).toHaveLength(0); // the last part needs no callback: the closing message follows it
  });

  it('never starts the whole state over when the stream drains before it said a part had left, or when the last part filled it', async () => {
    const { got, pending, sub } = heldStream(2, false); // every message fills the stream
    expect(got).toHaveLength(1);
    sub.drained(); // 'drain' first (a stream emits it after the write callbacks, which go on a turn later)
    expect(got).toHaveLength(1); // not the whole state again
    pending.shift()!(); // the first part has left the buffer
    await new Promise(r => setImmediate(r));
    expect(got).toHaveLength(2); // the last part, which filled the stream again: the closing message waits
    sub.drained();
    expect(got.map(m => [m.full, m.more])).toEqual([[true, true], [false, true], [false, false]]);
    expect(got.reduce((n, m) => n + m.upserts.length, 0)).toBe(2 * FULL_PART);
    sub.close();
  });

  it('goes on with the next part when a stream that filled up during the whole state drains (it never starts over)', async () => {
    const live = new Map<number, Mapping>();
    for (let i = 0; i < 5000; i++) live.set(1000 + i, mapping(1000 + i, i, `r${i}`));
    const { feed } = newFeed(new PidMap(1, new Map(live)));
    const got: MapUpdateMsg[] = [];
    let room = 3; // the stream takes 3 messages, then needs to drain
    const sub = feed.subscribe((u, written) => {
      if (written) setImmediate(written); // as a stream does once it has sent the message
      got.push(u);
      return --room > 0;
    });
    for (let round = 0; round < 20 && got.at(-1)?.more !== false; round++) {
      await new Promise(r => setTimeout(r, 5));
      room = 3;
      sub.drained();
    }
    expect(got.filter(m => m.full)).toHaveLength(1);
    expect(got.at(-1)?.more).toBe(false);
    expect(got.reduce((n, m) => n + m.upserts.length, 0)).toBe(5000);
  });

  // Issue 10, item 6: WatchMap writes ignored backpressure.
  it('stops writing to a subscriber whose stream is full, and resumes with the whole state when it drains', () => {
    const { feed } = newFeed(new PidMap(1, new Map()));
    const got: MapUpdateMsg[] = [];
    let room = 3;
    const sub = feed.subscribe((u, written) => {
      if (written) setImmediate(written); // as a stream does once it has sent the message
      got.push(u);
      return --room > 0;
    });
    const live = new Map<number, Mapping>();
    let snap = new PidMap(1, new Map());
    for (let i = 1; i <= 50; i++) {
      const m = mapping(100 + i, i, `r${i}`);
      live.set(m.hostPid, m);
      snap = snap.next(new Map([[m.hostPid, m]]), live);
      feed.publish(update(snap, [m.hostPid]));
    }
    expect(got).toHaveLength(3); // the whole state (one part and the closing one), one delta, then nothing while full
    expect(feed.behind).toBe(1);
    room = 100;
    sub.drained();
    expect(got).toHaveLength(5);
    expect(got[3]).toMatchObject({ full: true, more: true, map_version: String(snap.version), seq: '50' });
    expect(got[3]!.upserts.map(u => u.host_pid).sort((a, b) => a - b)).toEqual([...live.keys()].sort((a, b) => a - b));
    expect(got[4]).toMatchObject({ full: false, more: false });
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

  /** A /proc tree: pid -> [start time, pod UID or null, container PID]. */
  function procDir(procs: Record<number, [number, string | null, number?]>): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-mc-'));
    dirs.push(d);
    for (const [pid, [st, pod, cpid]] of Object.entries(procs)) {
      fs.mkdirSync(path.join(d, pid));
      const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
      fields[22 - 3] = String(st);
      fs.writeFileSync(path.join(d, pid, 'stat'), `${pid} (sleep) ${fields.join(' ')}\n`);
      fs.writeFileSync(path.join(d, pid, 'cgroup'), pod ? `0::/kubepods.slice/kubepods-besteffort-pod${pod.replace(/-/g, '_')}.slice/cri-containerd-${'a'.repeat(64)}.scope\n` : '0::/system.slice/sshd.service\n');
      fs.writeFileSync(path.join(d, pid, 'status'), `Name:\tsleep\nNSpid:\t${pid}${cpid !== undefined ? `\t${cpid}` : ''}\n`);
    }
    return d;
  }
  const POD = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
  const ownNs = String(fs.readlinkSync('/proc/self/ns/pid').match(/\d+/)![0]);
  const msg = (o: Partial<MapUpdateMsg>): MapUpdateMsg => ({
    map_version: '1',
    full: false,
    upserts: [],
    removed: [],
    pid_namespace: ownNs,
    instance: 'i1',
    seq: '1',
    pending: [],
    busy_scopes: [],
    layout: 'kubelet',
    flat_scope: '',
    slots: [],
    more: false,
    ...o,
  });
  const full = (entries: [number, number, string][], o: Partial<MapUpdateMsg> = {}): MapUpdateMsg =>
    msg({ full: true, upserts: entries.map(([host_pid, st, role]) => ({ host_pid, start_time: String(st), selector_values: [`process-role:${role}`], scope: `pod:${POD}` })), ...o });

  /** The daemon's sequence file, as the test sets it: the overall record, and per-slot ones when set. */
  class FakeSeq {
    current: { instance: string; seq: bigint } | undefined = { instance: 'i1', seq: 1n };
    readonly slots = new Map<number, bigint>();
    reopened = 0;
    read(slot = 0): { instance: string; seq: bigint } | undefined {
      const s = this.slots.get(slot);
      return s === undefined || this.current === undefined ? this.current : { instance: this.current.instance, seq: s };
    }
    reopen(): void {
      this.reopened++;
    }
  }

  function cacheWith(dir: string, now?: () => number, onSynced?: (mappings: number, ms: number, again: boolean) => void): { cache: MapCache; streams: FakeStream[]; seq: FakeSeq } {
    const streams: FakeStream[] = [];
    const seq = new FakeSeq();
    const cache = new MapCache(
      () => {
        const s = new FakeStream();
        streams.push(s);
        return s as never;
      },
      seq,
      dir,
      now,
      onSynced,
    );
    cache.start();
    return { cache, streams, seq };
  }

  it('answers a mapped PID only while its start time matches the mapping', () => {
    const { cache, streams } = cacheWith(procDir({ 42: [500, POD], 43: [600, POD] }));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'ask' }); // not synced yet
    streams[0]!.emit('data', full([[42, 500, 'a'], [43, 599, 'b']]));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    expect(cache.lookup(43, 60_000)).toEqual({ kind: 'ask' }); // PID 43 is another process now
    streams[0]!.emit('data', msg({ map_version: '2', removed: [42], seq: '1' }));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: [] }); // unknown now, nothing in flight
    cache.close();
    expect(streams[0]!.cancelled).toBe(true);
  });

  it('answers an unknown PID with nothing, unless something in flight could map it: an event of its pod, or a claim of its pod naming its container PID', () => {
    const { cache, streams } = cacheWith(procDir({ 50: [1, POD, 7], 51: [1, POD, 8], 52: [1, null, 7] }));
    streams[0]!.emit('data', full([], { pending: [{ scope: `pod:${POD}`, container_pids: [7] }] }));
    expect(cache.lookup(50, 60_000)).toEqual({ kind: 'ask' }); // a claim for container PID 7 of its pod waits
    expect(cache.lookup(51, 60_000)).toEqual({ kind: 'answer', values: [] }); // another container PID
    expect(cache.lookup(52, 60_000)).toEqual({ kind: 'answer', values: [] }); // a host process: no pod, never mappable
    expect(cache.lookup(99, 60_000)).toEqual({ kind: 'answer', values: [] }); // no such process
    streams[0]!.emit('data', msg({ busy_scopes: [`pod:${POD}`], pending: [{ scope: `pod:${POD}`, container_pids: [] }] }));
    expect(cache.lookup(50, 60_000)).toEqual({ kind: 'ask' }); // its pod has unprocessed marker events
    expect(cache.lookup(51, 60_000)).toEqual({ kind: 'ask' });
    streams[0]!.emit('data', msg({ busy_scopes: ['pod:someone-else'] }));
    expect(cache.lookup(51, 60_000)).toEqual({ kind: 'answer', values: [] }); // another pod's flood costs it nothing
    streams[0]!.emit('data', msg({ busy_scopes: ['*'] }));
    expect(cache.lookup(52, 60_000)).toEqual({ kind: 'ask' }); // the watch root itself changed
    cache.close();
  });

  it('never answers from a copy behind the daemon\'s sequence number: it says how far to catch up, and waits for it', async () => {
    const { cache, streams, seq } = cacheWith(procDir({ 42: [500, POD] }));
    streams[0]!.emit('data', full([[42, 500, 'a']], { seq: '5' }));
    seq.current = { instance: 'i1', seq: 5n };
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    seq.current = { instance: 'i1', seq: 6n }; // the daemon changed something; the message is on its way
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'lagging', seq: 6n });
    const caught = cache.waitFor(6n, 1000);
    streams[0]!.emit('data', msg({ removed: [42], seq: '6' }));
    expect(await caught).toBe(true);
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: [] });
    expect(await cache.waitFor(9n, 30)).toBe(false);
    seq.current = { instance: 'i2', seq: 0n }; // a new daemon run: this copy is not its state
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'ask' });
    expect(seq.reopened).toBe(1);
    seq.current = undefined; // no sequence file: ask
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'ask' });
    cache.close();
  });

  it('does not wait for changes to other pods: only a change to the PID\'s own scope (or to all scopes) makes its answer wait', () => {
    const OTHER = 'ffffffff-0000-1111-2222-333333333333';
    const { cache, streams, seq } = cacheWith(procDir({ 42: [500, POD], 50: [1, POD, 7], 60: [1, OTHER, 7], 61: [1, null] }));
    streams[0]!.emit('data', full([[42, 500, 'a']], { seq: '10', slots: [{ slot: slotOf(`pod:${POD}`), seq: '10' }] }));
    // The daemon moved on to 12 for the other pod only: records overall=12, other pod's slot=12, ours still 10.
    seq.current = { instance: 'i1', seq: 12n };
    seq.slots.set(slotOf(`pod:${POD}`), 10n);
    seq.slots.set(slotOf(`pod:${OTHER}`), 12n);
    seq.slots.set(ALL_SLOT, 0n);
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: ['process-role:a'] }); // mapped, our pod current
    expect(cache.lookup(50, 60_000)).toEqual({ kind: 'answer', values: [] }); // unknown, our pod current
    expect(cache.lookup(61, 60_000)).toEqual({ kind: 'answer', values: [] }); // a host process: only all-scope changes matter
    expect(cache.lookup(60, 60_000)).toEqual({ kind: 'lagging', seq: 12n }); // the other pod's own PID waits
    seq.slots.set(slotOf(`pod:${POD}`), 12n); // now our pod changed too
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'lagging', seq: 12n });
    seq.slots.set(ALL_SLOT, 12n); // and a change to all scopes
    expect(cache.lookup(61, 60_000)).toEqual({ kind: 'lagging', seq: 12n });
    cache.close();
  });

  it('drops the whole copy when the stream breaks, and resyncs on reconnect', async () => {
    const { cache, streams } = cacheWith(procDir({ 42: [500, POD] }));
    streams[0]!.emit('data', full([[42, 500, 'a']]));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    streams[0]!.emit('error', new Error('daemon went away'));
    expect(cache.ready).toBe(false);
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'ask' });
    await new Promise(r => setTimeout(r, 400));
    expect(streams).toHaveLength(2); // reconnected by itself
    streams[1]!.emit('data', full([[42, 500, 'a']]));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    cache.close();
  });

  // Issue 10, item 3: the plugin kept answering a revoked role while the daemon hung.
  it('stops answering from a copy not heard from within the bound, and resumes on the next message', () => {
    let now = 1000;
    const { cache, streams } = cacheWith(procDir({ 42: [500, POD] }), () => now);
    streams[0]!.emit('data', full([[42, 500, 'a']]));
    now += 1999;
    expect(cache.lookup(42, 2000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    now += 2;
    expect(cache.lookup(42, 2000)).toEqual({ kind: 'ask' }); // the daemon went quiet: hung, or its stream stalled
    expect(cache.lookup(77, 2000)).toEqual({ kind: 'ask' }); // unknown PIDs too
    streams[0]!.emit('data', msg({})); // a heartbeat
    expect(cache.lookup(42, 2000)).toEqual({ kind: 'answer', values: ['process-role:a'] });
    cache.close();
  });

  it('never uses a copy from a daemon in another PID namespace', () => {
    const { cache, streams } = cacheWith(procDir({ 42: [500, POD] }));
    streams[0]!.emit('data', full([[42, 500, 'a']], { pid_namespace: '1234' }));
    expect(cache.lookup(42, 60_000)).toEqual({ kind: 'ask' });
    expect(cache.ready).toBe(false);
    cache.close();
  });

  it('says when the copy is complete (the last part of the whole state), how big and how long it took; again when the daemon sends it all again on the same stream', () => {
    let now = 1000;
    const synced: [number, number, boolean][] = [];
    const { cache, streams } = cacheWith(procDir({ 42: [500, POD], 43: [600, POD] }), () => now, (n, ms, again) => synced.push([n, ms, again]));
    now += 30;
    streams[0]!.emit('data', full([[42, 500, 'a']], { more: true }));
    expect(synced).toEqual([]); // parts still to come
    now += 20;
    streams[0]!.emit('data', msg({ upserts: [{ host_pid: 43, start_time: '600', selector_values: ['process-role:b'], scope: `pod:${POD}` }] }));
    expect(synced).toEqual([[2, 50, false]]); // since the stream opened
    streams[0]!.emit('data', msg({})); // later deltas and heartbeats say nothing
    expect(synced).toHaveLength(1);
    now += 60_000;
    streams[0]!.emit('data', full([[42, 500, 'a']], { more: true })); // the plugin fell behind: the whole state again
    now += 7;
    streams[0]!.emit('data', msg({}));
    expect(synced).toEqual([[2, 50, false], [1, 7, true]]); // since its first part, not since the stream opened
    cache.close();
  });
});
