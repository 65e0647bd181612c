import { describe, expect, it } from 'vitest';
import { pidmapTable as renderTable } from '../../src/cli/pidmap.js';
import { rowOf, selectPidmap } from '../../src/daemon/debug-view.js';
import { PidMap, type Mapping } from '../../src/core/pid-map.js';
import { selectorValuesFor } from '../../src/core/selectors.js';
import type { Marker } from '../../src/core/marker.js';

const POD_A = '1f2e3d4c-5b6a-4789-9abc-def012345678';
const POD_B = 'abcdef01-2345-4678-9abc-def012345678';

function mapping(hostPid: number, m: Partial<Marker> & { podUid?: string }): Mapping {
  const marker: Marker = {
    agent_name: m.agent_name ?? 'crew',
    tenant: m.tenant ?? 'acme',
    process_role: m.process_role ?? 'main',
    container_pid: m.container_pid ?? 7,
    ...(m.framework !== undefined ? { framework: m.framework } : {}),
  };
  return {
    hostPid,
    startTime: 1000 + hostPid,
    pidNs: m.podUid ? 4026532201 : undefined,
    containerPid: marker.container_pid,
    podUid: m.podUid,
    containerId: m.podUid ? 'd'.repeat(64) : undefined,
    marker,
    markerPath: `/ctx/${marker.agent_name}-${marker.process_role}.json`,
    scope: m.podUid ? `pod:${m.podUid}` : 'flat:/ctx',
    mappedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    selectors: selectorValuesFor({ ...marker, podUid: m.podUid }),
  };
}

const SNAP = new PidMap(
  9,
  new Map(
    [
      mapping(300, { process_role: 'writer', podUid: POD_A, framework: 'crewai' }),
      mapping(100, { process_role: 'researcher', podUid: POD_A }),
      mapping(200, { process_role: 'researcher', podUid: POD_B, tenant: 'globex', agent_name: 'other' }),
      mapping(50, { process_role: 'main' }),
    ].map(m => [m.hostPid, m]),
  ),
);

describe('rowOf', () => {
  it('flattens a mapping into the debug row, with null for what is absent', () => {
    expect(rowOf(mapping(50, {}))).toEqual({
      host_pid: 50,
      container_pid: 7,
      agent_name: 'crew',
      tenant: 'acme',
      process_role: 'main',
      framework: null,
      pod_uid: null,
      container_id: null,
      pid_namespace: null,
      start_time: 1050,
      spiffe_path: 'agent/acme/crew/main',
      selectors: ['process-role:main', 'agent-name:crew', 'tenant:acme', 'spiffe-path:agent/acme/crew/main'],
      marker_path: '/ctx/crew-main.json',
      mapped_at: '2026-01-02T03:04:05.000Z',
    });
  });

  it('carries the pod context when there is one', () => {
    const r = rowOf(mapping(300, { podUid: POD_A, framework: 'crewai' }));
    expect(r.pod_uid).toBe(POD_A);
    expect(r.container_id).toBe('d'.repeat(64));
    expect(r.pid_namespace).toBe(4026532201);
    expect(r.framework).toBe('crewai');
  });
});

describe('selectPidmap', () => {
  it('lists every entry sorted by host PID, with the snapshot version and count', () => {
    const out = selectPidmap(SNAP);
    expect(out.version).toBe(9);
    expect(out.count).toBe(4);
    expect(out.mappings.map(m => m.hostPid)).toEqual([50, 100, 200, 300]);
  });

  it('filters by pod', () => {
    expect(selectPidmap(SNAP, { pod: POD_A }).mappings.map(m => m.hostPid)).toEqual([100, 300]);
  });

  it('filters by role', () => {
    expect(selectPidmap(SNAP, { role: 'researcher' }).mappings.map(m => m.hostPid)).toEqual([100, 200]);
  });

  it('filters by tenant and by agent', () => {
    expect(selectPidmap(SNAP, { tenant: 'globex' }).mappings.map(m => m.hostPid)).toEqual([200]);
    expect(selectPidmap(SNAP, { agent: 'crew' }).mappings.map(m => m.hostPid)).toEqual([50, 100, 300]);
  });

  it('ANDs several filters and counts only what matched', () => {
    const out = selectPidmap(SNAP, { pod: POD_A, role: 'researcher' });
    expect(out.mappings.map(m => m.hostPid)).toEqual([100]);
    expect(out.count).toBe(1);
  });

  it('treats undefined filter fields as no filter', () => {
    expect(selectPidmap(SNAP, { pod: undefined, role: undefined }).count).toBe(4);
  });

  it('returns no entries when nothing matches', () => {
    expect(selectPidmap(SNAP, { role: 'nobody' })).toEqual({ version: 9, count: 0, mappings: [] });
  });

  it('renders an empty snapshot', () => {
    expect(selectPidmap(PidMap.EMPTY)).toEqual({ version: 0, count: 0, mappings: [] });
  });
});

describe('the pidmap table', () => {
  it('prints a header and one aligned line per row, "-" for missing values', () => {
    const rows = [...selectPidmap(SNAP, { role: 'main' }).mappings, ...selectPidmap(SNAP, { pod: POD_B }).mappings].map(rowOf);
    const lines = renderTable(rows).split('\n');
    expect(lines).toHaveLength(4); // header, two rows, trailing ''
    expect(lines[3]).toBe('');
    expect(lines[0]).toMatch(/^HOST PID\s+CPID\s+TENANT\s+AGENT\s+ROLE\s+POD\s+MARKER$/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual(['50', '7', 'acme', 'crew', 'main', '-', '/ctx/crew-main.json']);
    expect(lines[2]!.split(/\s{2,}/)).toEqual(['200', '7', 'globex', 'other', 'researcher', POD_B, '/ctx/other-researcher.json']);
    // Columns line up: every column starts at the same offset on each line.
    const podCol = lines[0]!.indexOf('POD');
    expect(lines[1]!.indexOf('-')).toBe(podCol);
    expect(lines[2]!.indexOf(POD_B)).toBe(podCol);
  });

  it('prints only the header for no rows', () => {
    expect(renderTable([])).toBe('HOST PID  CPID  TENANT  AGENT  ROLE  POD  MARKER\n');
  });

  it('escapes pod-controlled text, so a marker name can never forge a row', () => {
    const [row] = selectPidmap(SNAP, { role: 'main' }).mappings.map(rowOf);
    const forged = { ...row!, marker_path: '/ctx/x.json\n666  7  acme  crew  admin  -  /ctx/\u001b[2Jfake.json' };
    const lines = renderTable([forged]).split('\n');
    expect(lines).toHaveLength(3); // header, one row, trailing ''
    expect(lines[1]).toContain('x.json\\n666');
    expect(lines[1]).toContain('\\x1b[2J');
  });

  it('has no trailing spaces', () => {
    for (const line of renderTable(selectPidmap(SNAP).mappings.map(rowOf)).split('\n')) expect(line).toBe(line.trimEnd());
  });
});
