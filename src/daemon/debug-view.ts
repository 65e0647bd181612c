// Pure renderers for the debug endpoint: snapshot in, JSON-able data out.
import type { Mapping, PidMap } from '../core/pid-map.js';
import { spiffePath } from '../core/selectors.js';

export interface PidmapRow {
  host_pid: number;
  container_pid: number;
  agent_name: string;
  tenant: string;
  process_role: string;
  framework: string | null;
  pod_uid: string | null;
  container_id: string | null;
  pid_namespace: number | null;
  start_time: number;
  spiffe_path: string;
  selectors: readonly string[];
  marker_path: string;
  mapped_at: string;
}

export function rowOf(m: Mapping): PidmapRow {
  return {
    host_pid: m.hostPid,
    container_pid: m.containerPid,
    agent_name: m.marker.agent_name,
    tenant: m.marker.tenant,
    process_role: m.marker.process_role,
    framework: m.marker.framework ?? null,
    pod_uid: m.podUid ?? null,
    container_id: m.containerId ?? null,
    pid_namespace: m.pidNs ?? null,
    start_time: m.startTime,
    spiffe_path: spiffePath(m.marker),
    selectors: m.selectors,
    marker_path: m.markerPath,
    mapped_at: new Date(m.mappedAt).toISOString(),
  };
}

export interface PidmapFilter {
  pod?: string | undefined;
  role?: string | undefined;
  tenant?: string | undefined;
  agent?: string | undefined;
}

/** The mappings /debug/pidmap lists, sorted by host PID (rows are made from them as they are written). */
export function selectPidmap(snap: PidMap, f: PidmapFilter = {}): { version: number; count: number; mappings: Mapping[] } {
  const mappings: Mapping[] = [];
  for (const m of snap.values()) {
    if (f.pod !== undefined && m.podUid !== f.pod) continue;
    if (f.role !== undefined && m.marker.process_role !== f.role) continue;
    if (f.tenant !== undefined && m.marker.tenant !== f.tenant) continue;
    if (f.agent !== undefined && m.marker.agent_name !== f.agent) continue;
    mappings.push(m);
  }
  mappings.sort((a, b) => a.hostPid - b.hostPid);
  return { version: snap.version, count: mappings.length, mappings };
}
