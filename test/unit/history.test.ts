import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  daemonDownAt,
  encodeEvent,
  heldAt,
  holdings,
  parseEventLine,
  roleEventOf,
  type HistoryEvent,
  type RoleEvent,
} from '../../src/core/history.js';
import type { Mapping } from '../../src/core/pid-map.js';
import { localTime, parseTimeArg } from '../../src/cli/time-arg.js';

const T0 = Date.parse('2026-11-23T14:00:00.000Z');
const at = (min: number): string => new Date(T0 + min * 60_000).toISOString();

function role(min: number, event: 'grant' | 'removal', pid: number, r: string, extra: Partial<RoleEvent> = {}): RoleEvent {
  return {
    time: at(min),
    event,
    cause: event === 'grant' ? 'mapped' : 'exited',
    host_pid: pid,
    start_time: pid * 10,
    container_pid: 7,
    pod_uid: 'pod-a',
    container_id: null,
    tenant: 'acme',
    agent_name: 'crew',
    process_role: r,
    marker_path: `/ctx/crew-${r}.json`,
    marker_inode: 42,
    ...extra,
  };
}
const daemon = (min: number, event: 'daemon_start' | 'daemon_stop'): HistoryEvent => ({ time: at(min), event, daemon_pid: 1, node_name: null });

describe('history lines', () => {
  it('round-trip, one line each, whatever the marker path holds', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.option(fc.string(), { nil: null }), (p, pod) => {
        const e = role(1, 'grant', 100, 'writer', { marker_path: p, pod_uid: pod });
        const line = encodeEvent(e);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(parseEventLine(line.slice(0, -1))).toEqual(e);
      }),
    );
  });

  it('refuse anything that is not an event of ours', () => {
    for (const bad of ['', 'x', '[]', '{"time":"x","event":"grant"}', '{"time":"2026-11-23T14:00:00Z","event":"steal"}', encodeEvent(role(1, 'grant', 1, 'w')).slice(0, 40)]) {
      expect(parseEventLine(bad), bad).toBeUndefined();
    }
    expect(parseEventLine(JSON.stringify({ ...role(1, 'grant', 1, 'w'), host_pid: undefined }))).toBeUndefined();
    expect(parseEventLine(JSON.stringify({ ...role(1, 'grant', 1, 'w'), host_pid: -1 }))).toBeUndefined();
  });

  it('are built from a mapping with the pidmap field names', () => {
    const m: Mapping = {
      hostPid: 4356,
      startTime: 99,
      pidNs: 1,
      containerPid: 7,
      podUid: 'u',
      containerId: 'c',
      marker: { agent_name: 'crew', tenant: 'acme', process_role: 'writer', container_pid: 7 },
      markerPath: '/ctx/crew-writer.json',
      scope: 's',
      mappedAt: 0,
      selectors: [],
    };
    expect(roleEventOf('removal', 'exited', m, 5)).toEqual({
      event: 'removal',
      cause: 'exited',
      host_pid: 4356,
      start_time: 99,
      container_pid: 7,
      pod_uid: 'u',
      container_id: 'c',
      tenant: 'acme',
      agent_name: 'crew',
      process_role: 'writer',
      marker_path: '/ctx/crew-writer.json',
      marker_inode: 5,
    });
  });
});

describe('which process held a role at a time', () => {
  const events: HistoryEvent[] = [
    daemon(0, 'daemon_start'),
    role(1, 'grant', 100, 'writer'),
    role(2, 'grant', 200, 'researcher'),
    role(5, 'removal', 100, 'writer'),
    role(6, 'grant', 300, 'writer'),
    daemon(10, 'daemon_stop'),
    daemon(20, 'daemon_start'),
    role(20, 'grant', 300, 'writer'), // restored after the restart
    role(30, 'removal', 300, 'writer', { cause: 'marker_removed' }),
  ];
  const all = holdings(events);
  const pids = (min: number, f = {}): number[] => heldAt(all, T0 + min * 60_000, f).map(h => h.grant.host_pid);

  it('pairs grants with removals, and ends a holding at a daemon stop', () => {
    expect(all.map(h => [h.grant.host_pid, h.from, h.until, h.endCause])).toEqual([
      [100, T0 + 60_000, T0 + 300_000, 'exited'],
      [200, T0 + 120_000, T0 + 600_000, 'daemon_stop'],
      [300, T0 + 360_000, T0 + 600_000, 'daemon_stop'],
      [300, T0 + 1_200_000, T0 + 1_800_000, 'marker_removed'],
    ]);
  });

  it('answers for an instant, with filters', () => {
    expect(pids(3, { role: 'writer' })).toEqual([100]);
    expect(pids(5, { role: 'writer' })).toEqual([]); // removed at 14:05 exactly
    expect(pids(7, { role: 'writer' })).toEqual([300]);
    expect(pids(7)).toEqual([200, 300]);
    expect(pids(7, { pid: 200 })).toEqual([200]);
    expect(pids(7, { pod: 'other' })).toEqual([]);
    expect(pids(15)).toEqual([]); // the daemon was down
    expect(pids(25, { role: 'writer' })).toEqual([300]);
    expect(pids(31)).toEqual([]);
  });

  it('says when the daemon was stopped at that time', () => {
    expect(daemonDownAt(events, T0 + 15 * 60_000)).toEqual({ stopped: T0 + 600_000, started: T0 + 1_200_000 });
    expect(daemonDownAt(events, T0 + 7 * 60_000)).toBeUndefined();
    expect(daemonDownAt([...events, daemon(40, 'daemon_stop')], T0 + 50 * 60_000)).toEqual({ stopped: T0 + 2_400_000, started: undefined });
  });

  it('ends at the next start what a crashed daemon left open, and keeps a held role open', () => {
    const crash = holdings([daemon(0, 'daemon_start'), role(1, 'grant', 100, 'w'), daemon(9, 'daemon_start'), role(9, 'grant', 100, 'w')]);
    expect(crash.map(h => [h.from, h.until, h.endCause])).toEqual([
      [T0 + 60_000, T0 + 540_000, 'daemon_restart'],
      [T0 + 540_000, undefined, null],
    ]);
  });

  it('treats a repeated grant of the same process and role as one holding', () => {
    const h = holdings([role(1, 'grant', 100, 'w'), role(2, 'grant', 100, 'w'), role(3, 'removal', 100, 'w')]);
    expect(h.map(x => [x.from, x.until])).toEqual([[T0 + 60_000, T0 + 180_000]]);
  });
});

describe('parseTimeArg (local time unless a zone is given)', () => {
  const now = new Date(2026, 10, 23, 15, 30, 0).getTime(); // 2026-11-23 15:30 local

  it('reads clock times as the latest such time', () => {
    expect(parseTimeArg('14:03', now)).toBe(new Date(2026, 10, 23, 14, 3, 0).getTime());
    expect(parseTimeArg('14:03:20', now)).toBe(new Date(2026, 10, 23, 14, 3, 20).getTime());
    expect(parseTimeArg('16:00', now)).toBe(new Date(2026, 10, 22, 16, 0, 0).getTime());
  });

  it('reads dates, local date-times and exact instants', () => {
    expect(parseTimeArg('2026-11-20', now)).toBe(new Date(2026, 10, 20).getTime());
    expect(parseTimeArg('2026-11-20 09:15', now)).toBe(new Date(2026, 10, 20, 9, 15).getTime());
    expect(parseTimeArg('2026-11-20T09:15:01.5', now)).toBe(new Date(2026, 10, 20, 9, 15, 1, 500).getTime());
    expect(parseTimeArg('2026-11-20T09:15:00Z', now)).toBe(Date.UTC(2026, 10, 20, 9, 15));
    expect(parseTimeArg('2026-11-20T09:15:00+02:00', now)).toBe(Date.UTC(2026, 10, 20, 7, 15));
  });

  it('reads durations as that long ago', () => {
    expect(parseTimeArg('90s', now)).toBe(now - 90_000);
    expect(parseTimeArg('1h', now)).toBe(now - 3_600_000);
    expect(parseTimeArg('2d', now)).toBe(now - 2 * 86_400_000);
  });

  it('refuses anything else', () => {
    for (const bad of ['', 'teatime', '25:00', '14:60', '2026-02-30', '2026-11-20T25:00', '1y', '-1h', '14']) expect(parseTimeArg(bad, now), bad).toBeUndefined();
  });

  it('prints local time back the way it reads it', () => {
    const t = new Date(2026, 10, 20, 9, 5, 7, 89).getTime();
    expect(localTime(t)).toBe('2026-11-20 09:05:07.089');
    expect(parseTimeArg(localTime(t), now)).toBe(t);
  });
});
