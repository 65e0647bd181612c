import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  normalizePodUid,
  parseBootTime,
  parseCgroup,
  parseNSpid,
  parseNsLink,
  parseStatStartTime,
} from '../../src/core/procparse.js';

/** A /proc/PID/status as a 5.15 kernel writes it, with the NSpid line given (or none). */
function statusText(nspidLine: string | undefined): string {
  return [
    'Name:\tpython3',
    'Umask:\t0022',
    'State:\tS (sleeping)',
    'Tgid:\t4242',
    'Ngid:\t0',
    'Pid:\t4242',
    'PPid:\t4200',
    'TracerPid:\t0',
    'Uid:\t1000\t1000\t1000\t1000',
    'Gid:\t1000\t1000\t1000\t1000',
    'FDSize:\t64',
    'Groups:\t1000 ',
    'NStgid:\t4242\t7',
    ...(nspidLine === undefined ? [] : [nspidLine]),
    'NSpgid:\t4242\t7',
    'NSsid:\t4242\t7',
    'VmPeak:\t   25000 kB',
    'Threads:\t1',
    'SigQ:\t0/63560',
    'Cpus_allowed_list:\t0-7',
    'voluntary_ctxt_switches:\t150',
    'nonvoluntary_ctxt_switches:\t3',
    '',
  ].join('\n');
}

/** The 52 fields of /proc/PID/stat with `comm` and starttime (field 22) given. */
function statLine(pid: number, comm: string, startTime: number | string): string {
  const fields: (string | number)[] = [pid, `(${comm})`, 'S', 1, pid, pid, 0, -1, 4194560, 1234, 0, 5, 0, 17, 4, 0, 0, 20, 0, 1];
  fields.push(0, startTime); // field 21 itrealvalue, field 22 starttime
  while (fields.length < 52) fields.push(fields.length * 3);
  return fields.join(' ') + '\n';
}

const UUID = '1f2e3d4c-5b6a-4789-9abc-def012345678';
const UUID_US = UUID.replace(/-/g, '_');
const CID = 'a'.repeat(8) + '0123456789abcdef'.repeat(3) + 'b'.repeat(8);
const STATIC_UID = '6e3c1a5d8f7b9e0a2c4d6f8a0b2c4d6e';

describe('parseNSpid', () => {
  it('reads the single PID of a process in the initial namespace', () => {
    expect(parseNSpid(statusText('NSpid:\t4242'))).toEqual([4242]);
  });

  it('reads the host PID and the container PID of a process in a nested namespace', () => {
    expect(parseNSpid(statusText('NSpid:\t4242\t7'))).toEqual([4242, 7]);
  });

  it('reads three levels of nesting, innermost last', () => {
    expect(parseNSpid(statusText('NSpid:\t4242\t120\t1'))).toEqual([4242, 120, 1]);
  });

  it('reads NSpid when it is the first line', () => {
    expect(parseNSpid('NSpid:\t12\t3\nName:\tx\n')).toEqual([12, 3]);
  });

  it('reads NSpid when it is the last line without a newline', () => {
    expect(parseNSpid('Name:\tx\nNSpid:\t12\t3')).toEqual([12, 3]);
  });

  it('returns undefined when the NSpid line is missing (kernel before 4.1)', () => {
    expect(parseNSpid(statusText(undefined))).toBeUndefined();
  });

  it('does not take NStgid or NSpgid for NSpid', () => {
    expect(parseNSpid('NStgid:\t10\t2\nNSpgid:\t10\t2\n')).toBeUndefined();
  });

  it('does not match "NSpid:" in the middle of another line', () => {
    expect(parseNSpid('Name:\tNSpid:\t5\n')).toBeUndefined();
  });

  it.each([
    ['an empty NSpid line', 'NSpid:'],
    ['a tab-only NSpid line', 'NSpid:\t'],
    ['a non-numeric value', 'NSpid:\t4242\tseven'],
    ['a negative value', 'NSpid:\t4242\t-7'],
    ['a zero', 'NSpid:\t4242\t0'],
    ['an 11-digit value', 'NSpid:\t12345678901'],
    ['a hexadecimal value', 'NSpid:\t0x10'],
    ['a decimal fraction', 'NSpid:\t7.5'],
  ])('returns undefined for %s', (_what, line) => {
    expect(parseNSpid(statusText(line))).toBeUndefined();
  });

  it.each(['', '\n\n', 'garbage', '\u0000\u0001\u0002', 'NSpid', 'nspid:\t1'])('returns undefined for the garbage %j', text => {
    expect(parseNSpid(text)).toBeUndefined();
  });

  it('tolerates spaces as separators', () => {
    expect(parseNSpid('NSpid:  10  2 \n')).toEqual([10, 2]);
  });
});

describe('parseStatStartTime', () => {
  it('reads field 22 of a plain stat line', () => {
    expect(parseStatStartTime(statLine(1234, 'python3', 98765))).toBe(98765);
  });

  it('reads field 22 when comm contains spaces', () => {
    expect(parseStatStartTime(statLine(1234, 'my worker 2', 555))).toBe(555);
  });

  it('reads field 22 when comm contains ")" and "(" (counted after the LAST ")")', () => {
    const line = statLine(1234, 'a) b) c', 4242);
    expect(line.startsWith('1234 (a) b) c) S 1 ')).toBe(true);
    expect(parseStatStartTime(line)).toBe(4242);
  });

  it('is not fooled by a comm that imitates the fields after it', () => {
    const fake = 'x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 111 (';
    expect(parseStatStartTime(statLine(9, fake, 222))).toBe(222);
  });

  it('reads field 22 when comm is empty or is just "()"', () => {
    expect(parseStatStartTime(statLine(9, '', 7))).toBe(7);
    expect(parseStatStartTime(statLine(9, '()', 8))).toBe(8);
  });

  it('reads a start time of 0 and a large safe start time', () => {
    expect(parseStatStartTime(statLine(1, 'systemd', 0))).toBe(0);
    expect(parseStatStartTime(statLine(1, 'x', 2 ** 52))).toBe(2 ** 52);
  });

  it('reads a real stat line of this very process', async () => {
    const { readFileSync } = await import('node:fs');
    const t = parseStatStartTime(readFileSync('/proc/self/stat', 'latin1'));
    expect(Number.isSafeInteger(t)).toBe(true);
    expect(t).toBeGreaterThan(0);
  });

  it.each([
    ['no ")" at all', '1234 python3 S 1 2 3'],
    ['a line truncated before field 22', '1234 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0\n'],
    ['a non-numeric field 22', statLine(1, 'x', 'abc')],
    ['a negative field 22', statLine(1, 'x', -5)],
    ['a field 22 beyond 2^53', statLine(1, 'x', '99999999999999999999')],
    ['the empty string', ''],
  ])('returns undefined for %s', (_what, text) => {
    expect(parseStatStartTime(text)).toBeUndefined();
  });
});

describe('parseNsLink', () => {
  it('reads the inode of a pid namespace link', () => {
    expect(parseNsLink('pid:[4026532201]')).toBe(4026532201);
  });

  it('tolerates a trailing newline', () => {
    expect(parseNsLink('pid:[4026531836]\n')).toBe(4026531836);
  });

  it('reads another kind when asked for it', () => {
    expect(parseNsLink('mnt:[4026531840]', 'mnt')).toBe(4026531840);
  });

  it.each(['mnt:[4026531840]', 'pid_for_children:[4026531836]', 'pid:4026531836', 'pid:[]', 'pid:[0]', 'pid:[-1]', 'pid:[12a]', '', 'pid:[4026531836]x'])(
    'returns undefined for %j when a pid link is expected',
    text => {
      expect(parseNsLink(text)).toBeUndefined();
    },
  );
});

describe('parseBootTime', () => {
  const procStat = 'cpu  1 2 3 4 5 6 7 0 0 0\ncpu0 1 2 3 4 5 6 7 0 0 0\nintr 12345\nctxt 99\nbtime 1700000000\nprocesses 5000\n';

  it('reads btime from /proc/stat', () => {
    expect(parseBootTime(procStat)).toBe(1_700_000_000);
  });

  it('reads btime when it is the first line', () => {
    expect(parseBootTime('btime 42\ncpu 0\n')).toBe(42);
  });

  it.each(['', 'cpu 1 2 3\n', 'xbtime 5\n', 'btime\n', 'btime abc\n'])('returns undefined for %j', text => {
    expect(parseBootTime(text)).toBeUndefined();
  });
});

describe('normalizePodUid', () => {
  it('accepts a dashed UUID unchanged', () => {
    expect(normalizePodUid(UUID)).toBe(UUID);
  });

  it('turns the systemd driver underscores into dashes', () => {
    expect(normalizePodUid(UUID_US)).toBe(UUID);
  });

  it('lower-cases an upper-case UUID', () => {
    expect(normalizePodUid(UUID.toUpperCase())).toBe(UUID);
  });

  it('accepts the 32-hex config hash of a static pod', () => {
    expect(normalizePodUid(STATIC_UID)).toBe(STATIC_UID);
  });

  it.each(['', 'not-a-uid', UUID.slice(1), UUID + '0', UUID.replace(/-/g, '').slice(1), 'g'.repeat(32), STATIC_UID + 'a', '../' + UUID, `${UUID}/x`])(
    'rejects %j',
    text => {
      expect(normalizePodUid(text)).toBeUndefined();
    },
  );
});

describe('parseCgroup', () => {
  const v1 = (path: string): string =>
    [
      `12:pids:${path}`,
      `11:memory:${path}`,
      `10:cpu,cpuacct:${path}`,
      `1:name=systemd:${path}`,
      '0::/',
      '',
    ].join('\n');

  it('reads a cgroup v1 cgroupfs path (besteffort)', () => {
    expect(parseCgroup(v1(`/kubepods/besteffort/pod${UUID}/${CID}`))).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a cgroup v1 cgroupfs path of a guaranteed pod (no QoS level)', () => {
    expect(parseCgroup(v1(`/kubepods/pod${UUID}/${CID}`))).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a cgroup v1 systemd path with a docker scope and an underscored uid', () => {
    const p = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UUID_US}.slice/docker-${CID}.scope`;
    expect(parseCgroup(v1(p))).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a cgroup v2 containerd path (systemd driver)', () => {
    const text = `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UUID_US}.slice/cri-containerd-${CID}.scope\n`;
    expect(parseCgroup(text)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a cgroup v2 guaranteed pod under the systemd driver', () => {
    const text = `0::/kubepods.slice/kubepods-pod${UUID_US}.slice/cri-containerd-${CID}.scope\n`;
    expect(parseCgroup(text)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a cgroup v2 cgroupfs path', () => {
    expect(parseCgroup(`0::/kubepods/burstable/pod${UUID}/${CID}\n`)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a CRI-O container scope', () => {
    const text = `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UUID_US}.slice/crio-${CID}.scope\n`;
    expect(parseCgroup(text)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('gives the pod but no container id for the CRI-O conmon scope', () => {
    const text = `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UUID_US}.slice/crio-conmon-${CID}.scope\n`;
    expect(parseCgroup(text)).toEqual({ podUid: UUID });
  });

  it('reads a static pod whose uid is a 32-hex config hash', () => {
    expect(parseCgroup(`0::/kubepods/besteffort/pod${STATIC_UID}/${CID}\n`)).toEqual({ podUid: STATIC_UID, containerId: CID });
  });

  it('reads a path relative to the reader\'s own cgroup namespace ("/../..")', () => {
    // A daemon in a private cgroup namespace sees other pods' cgroups relative to its own.
    const text = `0::/../../kubepods-besteffort-pod${UUID_US}.slice/cri-containerd-${CID}.scope\n`;
    expect(parseCgroup(text)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('reads a container below a nested cgroup inside it (v2 delegation)', () => {
    expect(parseCgroup(`0::/kubepods/pod${UUID}/cri-containerd-${CID}.scope/init.scope\n`)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('lower-cases an upper-case container id', () => {
    expect(parseCgroup(`0::/kubepods/pod${UUID}/${CID.toUpperCase()}\n`)).toEqual({ podUid: UUID, containerId: CID });
  });

  it('gives the pod only for the pod-level cgroup (the pause sandbox before a container scope)', () => {
    expect(parseCgroup(`0::/kubepods/besteffort/pod${UUID}\n`)).toEqual({ podUid: UUID });
  });

  it('ignores a 64-hex segment that is not below a pod', () => {
    expect(parseCgroup(`0::/system.slice/docker-${CID}.scope\n`)).toEqual({});
  });

  it.each([
    ['the root cgroup', '0::/\n'],
    ['a systemd service', '0::/system.slice/sshd.service\n'],
    ['a user session', '0::/user.slice/user-1000.slice/session-3.scope\n'],
    ['a v1 host process', '12:pids:/user.slice\n11:memory:/user.slice\n1:name=systemd:/init.scope\n0::/\n'],
    ['kubepods without a pod segment', '0::/kubepods.slice/kubepods-besteffort.slice\n'],
    ['a pod segment with a bad uid', `0::/kubepods/podnot-a-uid/${CID}\n`],
    ['the empty string', ''],
    ['lines without colons', 'garbage\nmore garbage\n'],
  ])('returns {} for %s', (_what, text) => {
    expect(parseCgroup(text)).toEqual({});
  });

  it('prefers the unified (v2) line when both name a pod', () => {
    const other = 'abcdef01-2345-4678-9abc-def012345678';
    const text = `4:pids:/kubepods/pod${other}/${CID}\n0::/kubepods/pod${UUID}/${CID}\n`;
    expect(parseCgroup(text).podUid).toBe(UUID);
  });

  it('falls back to the first v1 line naming a pod when the v2 line does not (hybrid mode)', () => {
    const text = `12:pids:/kubepods/pod${UUID}/${CID}\n1:name=systemd:/kubepods/podabcdef01-2345-4678-9abc-def012345678/${CID}\n0::/\n`;
    expect(parseCgroup(text).podUid).toBe(UUID);
  });

  it('keeps a ":" inside the cgroup path', () => {
    expect(parseCgroup(`0::/kubepods/pod${UUID}/${CID}:extra\n`)).toEqual({ podUid: UUID });
  });
});

// ---------------------------------------------------------------------------
// Properties

const hex = (n: number): fc.Arbitrary<string> => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const uuidArb = fc.uuid({ version: [1, 2, 3, 4, 5] });
const uidArb = fc.oneof(uuidArb, hex(32));
const qosArb = fc.constantFrom('besteffort', 'burstable', undefined);

describe('/proc parsers: properties', () => {
  it('never throw on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('\n', ':', '/', 'pod', ')', ' ', '\t', 'NSpid:', '1', 'btime ', '-', '_', 'a') })), text => {
        parseNSpid(text);
        parseStatStartTime(text);
        parseNsLink(text);
        parseBootTime(text);
        normalizePodUid(text);
        const info = parseCgroup(text);
        expect(typeof info).toBe('object');
      }),
      { numRuns: 1000 },
    );
  });

  it('parseNSpid recovers every generated NSpid list from a status text', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4_194_304 }), { minLength: 1, maxLength: 5 }), pids => {
        expect(parseNSpid(statusText(`NSpid:\t${pids.join('\t')}`))).toEqual(pids);
      }),
    );
  });

  it('parseStatStartTime recovers field 22 whatever the comm contains (no newline)', () => {
    const comm = fc.string({ unit: fc.oneof(fc.constantFrom(')', '(', ' ', ') ', ' (', '0', 'S'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 32 }).filter(s => !s.includes('\n'));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4_194_304 }), comm, fc.maxSafeNat(), (pid, c, start) => {
        expect(parseStatStartTime(statLine(pid, c, start))).toBe(start);
      }),
      { numRuns: 1000 },
    );
  });

  it('parseCgroup finds the pod uid and container id in generated cgroupfs paths', () => {
    fc.assert(
      fc.property(uidArb, qosArb, hex(64), fc.boolean(), fc.boolean(), (uid, qos, cid, v2, upper) => {
        const path = `/kubepods${qos ? `/${qos}` : ''}/pod${upper ? uid.toUpperCase() : uid}/${cid}`;
        const text = v2 ? `0::${path}\n` : `11:memory:${path}\n10:cpu,cpuacct:${path}\n0::/\n`;
        expect(parseCgroup(text)).toEqual({ podUid: uid.toLowerCase(), containerId: cid });
      }),
    );
  });

  it('parseCgroup finds the pod uid and container id in generated systemd paths', () => {
    const runtime = fc.constantFrom('cri-containerd-', 'crio-', 'docker-', '');
    fc.assert(
      fc.property(uidArb, qosArb, hex(64), runtime, fc.boolean(), (uid, qos, cid, rt, v2) => {
        const q = qos ? `kubepods-${qos}` : 'kubepods';
        const path = `/kubepods.slice${qos ? `/${q}.slice` : ''}/${q}-pod${uid.replace(/-/g, '_')}.slice/${rt}${cid}.scope`;
        const text = v2 ? `0::${path}\n` : `1:name=systemd:${path}\n0::/\n`;
        expect(parseCgroup(text)).toEqual({ podUid: uid.toLowerCase(), containerId: cid });
      }),
    );
  });

  it('parseCgroup never reports a container id without a pod uid', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom('kubepods', 'kubepods.slice', `pod${UUID}`, `crio-conmon-${CID}.scope`, `docker-${CID}.scope`, CID, 'x'), fc.string()), { maxLength: 6 }), segs => {
        const info = parseCgroup(`0::/${segs.join('/')}\n`);
        if (info.containerId !== undefined) expect(info.podUid).toBeDefined();
        if (info.containerId !== undefined) expect(info.containerId).toMatch(/^[0-9a-f]{64}$/);
      }),
      { numRuns: 500 },
    );
  });
});
