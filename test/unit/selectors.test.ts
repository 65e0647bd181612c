import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SELECTOR_KINDS, selectorValuesFor, spiffePath } from '../../src/core/selectors.js';
import { parseDuration } from '../../src/core/duration.js';
import { PidMap, type Mapping } from '../../src/core/pid-map.js';
import type { Marker } from '../../src/core/marker.js';

const UID = '1f2e3d4c-5b6a-4789-9abc-def012345678';
const CID = 'c'.repeat(64);

describe('selectorValuesFor', () => {
  it('emits role, agent, tenant and spiffe-path for a marker without pod context', () => {
    expect(selectorValuesFor({ agent_name: 'crew', tenant: 'acme', process_role: 'researcher' })).toEqual([
      'process-role:researcher',
      'agent-name:crew',
      'tenant:acme',
      'spiffe-path:agent/acme/crew/researcher',
    ]);
  });

  it('adds framework, pod-uid and container-id when given, before spiffe-path', () => {
    expect(
      selectorValuesFor({ agent_name: 'crew', tenant: 'acme', process_role: 'writer', framework: 'crewai', podUid: UID, containerId: CID }),
    ).toEqual([
      'process-role:writer',
      'agent-name:crew',
      'tenant:acme',
      'framework:crewai',
      `pod-uid:${UID}`,
      `container-id:${CID}`,
      'spiffe-path:agent/acme/crew/writer',
    ]);
  });

  it('treats explicitly undefined optional fields as absent', () => {
    const v = selectorValuesFor({ agent_name: 'a', tenant: 't', process_role: 'r', framework: undefined, podUid: undefined, containerId: undefined });
    expect(v).toHaveLength(4);
  });

  it('only emits kinds listed in SELECTOR_KINDS, each at most once', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            agent_name: fc.string({ minLength: 1 }),
            tenant: fc.string({ minLength: 1 }),
            process_role: fc.string({ minLength: 1 }),
            framework: fc.string({ minLength: 1 }),
            podUid: fc.uuid(),
            containerId: fc.stringMatching(/^[0-9a-f]{64}$/),
          },
          { requiredKeys: ['agent_name', 'tenant', 'process_role'] },
        ),
        s => {
          const kinds = selectorValuesFor(s).map(v => v.slice(0, v.indexOf(':')));
          expect(new Set(kinds).size).toBe(kinds.length);
          for (const k of kinds) expect(SELECTOR_KINDS).toContain(k);
          expect(kinds).toContain('process-role');
          expect(kinds.at(-1)).toBe('spiffe-path');
        },
      ),
    );
  });
});

describe('spiffePath', () => {
  it('orders tenant, agent, role', () => {
    expect(spiffePath({ tenant: 't', agent_name: 'a', process_role: 'r' })).toBe('agent/t/a/r');
  });
});

describe('parseDuration', () => {
  it.each<[unknown, number]>([
    ['500ms', 500],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['250', 250],
    ['0', 0],
    ['0s', 0],
    [' 3s ', 3000],
    [1500, 1500],
    [0, 0],
    ['999999999h', 999_999_999 * 3_600_000],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    ['1000000000', 1_000_000_000],
  ])('parses %j as %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each<unknown>(['', '-1s', '1d', '1 s', '1S', 's', '1ms2', '1e3', '0x10', -1, 1.5, Number.NaN, Infinity, null, undefined, true, {}, ['1s']])(
    'rejects %j',
    input => {
      expect(parseDuration(input)).toBeUndefined();
    },
  );

  it('always returns a non-negative safe integer or undefined', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double(), fc.integer(), fc.jsonValue()), v => {
        const d = parseDuration(v);
        if (d !== undefined) {
          expect(Number.isSafeInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('PidMap', () => {
  const marker: Marker = { agent_name: 'a', tenant: 't', process_role: 'r', container_pid: 7 };
  const mapping = (hostPid: number): Mapping => ({
    hostPid,
    startTime: 100,
    pidNs: undefined,
    containerPid: 7,
    podUid: undefined,
    containerId: undefined,
    marker,
    markerPath: '/x/a-r.json',
    scope: 'flat:/x',
    mappedAt: 0,
    selectors: [],
  });

  it('EMPTY has version 0 and no entries', () => {
    expect(PidMap.EMPTY.version).toBe(0);
    expect(PidMap.EMPTY.size).toBe(0);
    expect(PidMap.EMPTY.get(1)).toBeUndefined();
    expect([...PidMap.EMPTY.values()]).toEqual([]);
  });

  it('looks up a mapping by host PID', () => {
    const m = new PidMap(3, new Map([[42, mapping(42)], [43, mapping(43)]]));
    expect(m.version).toBe(3);
    expect(m.size).toBe(2);
    expect(m.get(42)?.hostPid).toBe(42);
    expect(m.get(44)).toBeUndefined();
    expect([...m.values()].map(x => x.hostPid)).toEqual([42, 43]);
  });
});
