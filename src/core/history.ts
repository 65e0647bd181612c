// Identity history: what the daemon appends to state_dir/history.jsonl (one
// JSON object per line) for every grant and removal of a role, and the pure
// reading side: parsing lines defensively, pairing grants with removals into
// holdings, and answering "which process held role X at 14:03?".
//
// The writer is src/daemon/history.ts; the command is src/cli/history.ts.
import type { Mapping } from './pid-map.js';

/**
 * One grant or removal of a role to one process. Field names follow
 * /debug/pidmap. `host_pid` + `start_time` name one process for good (a later
 * process reusing the PID has another start time).
 */
export interface RoleEvent {
  /** When the daemon decided: ISO-8601 UTC with milliseconds. */
  readonly time: string;
  readonly event: 'grant' | 'removal';
  /**
   * grant: "mapped". removal: why the mapping went, as in
   * hexr_evictions_total{cause}: exited, start_time_changed, marker_removed,
   * marker_changed (the decision core may add others).
   */
  readonly cause: string;
  readonly host_pid: number;
  /** Field 22 of /proc/H/stat, clock ticks after boot. */
  readonly start_time: number;
  readonly container_pid: number;
  readonly pod_uid: string | null;
  readonly container_id: string | null;
  readonly tenant: string;
  readonly agent_name: string;
  readonly process_role: string;
  /** As the daemon sees it; pod-controlled: escape before printing. */
  readonly marker_path: string;
  readonly marker_inode: number | null;
}

/** Written by the history writer itself when the daemon starts and stops cleanly. */
export interface DaemonEvent {
  readonly time: string;
  readonly event: 'daemon_start' | 'daemon_stop';
  readonly daemon_pid: number;
  readonly node_name: string | null;
}

export type HistoryEvent = RoleEvent | DaemonEvent;

/** What the decision core hands to HistoryWriter.record(): the writer stamps the time. */
export type RoleEventInput = Omit<RoleEvent, 'time'>;

/** A RoleEventInput from a mapping (the reconciler's shape). */
export function roleEventOf(event: RoleEvent['event'], cause: string, m: Mapping, markerInode: number | undefined): RoleEventInput {
  return {
    event,
    cause,
    host_pid: m.hostPid,
    start_time: m.startTime,
    container_pid: m.containerPid,
    pod_uid: m.podUid ?? null,
    container_id: m.containerId ?? null,
    tenant: m.marker.tenant,
    agent_name: m.marker.agent_name,
    process_role: m.marker.process_role,
    marker_path: m.markerPath,
    marker_inode: markerInode ?? null,
  };
}

/** One line, newline included. JSON escapes every control character, so a line never breaks. */
export function encodeEvent(e: HistoryEvent): string {
  return `${JSON.stringify(e)}\n`;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string';
const strOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** A line read back (our own format, still checked field by field); undefined if it is not one. */
export function parseEventLine(line: string): HistoryEvent | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const r = o as Record<string, unknown>;
  if (!isStr(r['time']) || Number.isNaN(Date.parse(r['time']))) return undefined;
  const time = r['time'];
  if (r['event'] === 'daemon_start' || r['event'] === 'daemon_stop') {
    if (!isInt(r['daemon_pid']) || !strOrNull(r['node_name'])) return undefined;
    return { time, event: r['event'], daemon_pid: r['daemon_pid'], node_name: r['node_name'] };
  }
  if (r['event'] !== 'grant' && r['event'] !== 'removal') return undefined;
  const { cause, host_pid, start_time, container_pid, pod_uid, container_id, tenant, agent_name, process_role, marker_path, marker_inode } = r;
  if (!isStr(cause) || !isInt(host_pid) || !isInt(start_time) || !isInt(container_pid)) return undefined;
  if (!strOrNull(pod_uid) || !strOrNull(container_id) || !isStr(tenant) || !isStr(agent_name) || !isStr(process_role) || !isStr(marker_path)) return undefined;
  if (marker_inode !== null && !isInt(marker_inode)) return undefined;
  return { time, event: r['event'], cause, host_pid, start_time, container_pid, pod_uid, container_id, tenant, agent_name, process_role, marker_path, marker_inode };
}

export function isRoleEvent(e: HistoryEvent): e is RoleEvent {
  return e.event === 'grant' || e.event === 'removal';
}

export interface HistoryFilter {
  readonly role?: string | undefined;
  readonly pod?: string | undefined;
  readonly pid?: number | undefined;
  readonly agent?: string | undefined;
  readonly tenant?: string | undefined;
}

export function matches(e: RoleEvent, f: HistoryFilter): boolean {
  return (
    (f.role === undefined || e.process_role === f.role) &&
    (f.pod === undefined || e.pod_uid === f.pod) &&
    (f.pid === undefined || e.host_pid === f.pid) &&
    (f.agent === undefined || e.agent_name === f.agent) &&
    (f.tenant === undefined || e.tenant === f.tenant)
  );
}

/** A role held by one process from a grant until a removal (or a daemon stop/restart, or still). */
export interface Holding {
  readonly grant: RoleEvent;
  readonly from: number;
  /** undefined: still held as of the last recorded event. */
  readonly until: number | undefined;
  /** The removal's cause, "daemon_stop", "daemon_restart" (no stop was recorded), or null while held. */
  readonly endCause: string | null;
}

function holdingKey(e: RoleEvent): string {
  return `${e.host_pid}\u0000${e.start_time}\u0000${e.marker_path}`;
}

/** Pairs grants with removals; `events` in the order they were written. */
export function holdings(events: readonly HistoryEvent[]): Holding[] {
  const done: Holding[] = [];
  const open = new Map<string, { grant: RoleEvent; from: number }>();
  const closeAll = (at: number, cause: string): void => {
    for (const h of open.values()) done.push({ ...h, until: at, endCause: cause });
    open.clear();
  };
  for (const e of events) {
    const t = Date.parse(e.time);
    if (!isRoleEvent(e)) closeAll(t, e.event === 'daemon_stop' ? 'daemon_stop' : 'daemon_restart');
    else {
      const key = holdingKey(e);
      const cur = open.get(key);
      if (e.event === 'grant') {
        if (cur && cur.grant.process_role === e.process_role && cur.grant.agent_name === e.agent_name && cur.grant.tenant === e.tenant) continue;
        if (cur) done.push({ ...cur, until: t, endCause: 'regranted' });
        open.set(key, { grant: e, from: t });
      } else if (cur) {
        done.push({ ...cur, until: t, endCause: e.cause });
        open.delete(key);
      }
    }
  }
  for (const h of open.values()) done.push({ ...h, until: undefined, endCause: null });
  return done.sort((a, b) => a.from - b.from);
}

/** Holdings that cover the instant `t` (from <= t < until). */
export function heldAt(all: readonly Holding[], t: number, f: HistoryFilter): Holding[] {
  return all.filter(h => h.from <= t && (h.until === undefined || t < h.until) && matches(h.grant, f));
}

/** When `t` falls between a clean daemon stop and the next start: that interval. */
export function daemonDownAt(events: readonly HistoryEvent[], t: number): { stopped: number; started: number | undefined } | undefined {
  let stopped: number | undefined;
  for (const e of events) {
    const et = Date.parse(e.time);
    if (et > t) {
      if (stopped !== undefined && e.event === 'daemon_start') return { stopped, started: et };
      break;
    }
    if (e.event === 'daemon_stop') stopped = et;
    else if (e.event === 'daemon_start') stopped = undefined;
  }
  return stopped === undefined ? undefined : { stopped, started: undefined };
}
