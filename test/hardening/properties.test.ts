// Property tests that the unit suites (test/unit/marker, procparse, hcl) do
// not already have: the bytes path of the marker parser against its text
// path, round-trips of the small /proc parsers, the pod-UID normalizer, the
// layout classifier (never escapes its root), and the whole marker-reading
// pipeline (secure-fs read + parse) on arbitrary file contents.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKER_MAX_BYTES, PID_MAX, parseMarker, parseMarkerBytes } from '../../src/core/marker.js';
import { normalizePodUid, parseBootTime, parseNsLink } from '../../src/core/procparse.js';
import { createLayout } from '../../src/daemon/layout.js';
import { openDirNoFollow, readMarkerFile } from '../../src/daemon/secure-fs.js';

const goodName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
const validMarker = fc.record(
  {
    agent_name: goodName,
    tenant: goodName,
    process_role: goodName,
    container_pid: fc.integer({ min: 1, max: PID_MAX }),
    framework: goodName,
    pid_namespace: fc.integer({ min: 1, max: 0xffff_ffff }),
    process_start_time: fc.maxSafeNat(),
  },
  { requiredKeys: ['agent_name', 'tenant', 'process_role', 'container_pid'] },
);

describe('marker parser: bytes path', () => {
  it('re-parses the UTF-8 bytes of every accepted marker to the same marker, with or without a BOM', () => {
    fc.assert(
      fc.property(validMarker, fc.boolean(), fc.constantFrom('', ' ', '\n', '\t\r\n'), (m, bom, ws) => {
        const text = `${ws}${JSON.stringify(m)}${ws}`;
        const first = parseMarker(text);
        expect(first.ok).toBe(true);
        if (!first.ok) return;
        const bytes = Buffer.concat([bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from(JSON.stringify(first.marker))]);
        const again = parseMarkerBytes(bytes);
        expect(again).toEqual(first);
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with the text path on every well-formed string (no BOM)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.json({ maxDepth: 3 }), validMarker.map(m => JSON.stringify(m))), s => {
        fc.pre(!s.startsWith('\uFEFF'));
        expect(parseMarkerBytes(Buffer.from(s, 'utf8'))).toEqual(parseMarker(s));
      }),
      { numRuns: 1000 },
    );
  });

  it('never accepts a marker whose bytes are not valid UTF-8', () => {
    const invalidSeq = fc.constantFrom([0xc3, 0x28], [0xa0, 0xa1], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0xbc], [0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80]);
    fc.assert(
      fc.property(validMarker, invalidSeq, fc.nat(), (m, bad, at) => {
        const good = Buffer.from(JSON.stringify(m));
        const i = at % (good.length + 1);
        const bytes = Buffer.concat([good.subarray(0, i), Buffer.from(bad), good.subarray(i)]);
        expect(parseMarkerBytes(bytes)).toEqual({ ok: false, reason: 'invalid-utf8' });
      }),
      { numRuns: 300 },
    );
  });
});

describe('/proc parsers: round-trips', () => {
  it('parseNsLink reads back every "kind:[inode]" it is given, and only for its kind', () => {
    const kind = fc.constantFrom('pid', 'mnt', 'net', 'user', 'pid_for_children', 'cgroup');
    fc.assert(
      fc.property(kind, kind, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom('', '\n'), (k, asked, n, nl) => {
        expect(parseNsLink(`${k}:[${n}]${nl}`, asked)).toBe(k === asked ? n : undefined);
      }),
    );
  });

  it('parseBootTime finds btime wherever it sits in /proc/stat', () => {
    const otherLine = fc.stringMatching(/^(cpu\d? [0-9 ]{0,30}|intr [0-9 ]{0,20}|ctxt \d{1,10}|processes \d{1,8}|procs_running \d{1,3}|xbtime \d{1,5})$/);
    fc.assert(
      fc.property(fc.array(otherLine, { maxLength: 6 }), fc.array(otherLine, { maxLength: 6 }), fc.integer({ min: 0, max: 2 ** 40 }), (before, after, bt) => {
        expect(parseBootTime([...before, `btime ${bt}`, ...after].join('\n'))).toBe(bt);
      }),
    );
  });

  it('normalizePodUid: canonical output, idempotent, independent of case and separator style', () => {
    const hex = (n: number): fc.Arbitrary<string> => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
    const sep = fc.constantFrom('-', '_');
    const uuid = fc.tuple(hex(8), sep, hex(4), sep, hex(4), sep, hex(4), sep, hex(12)).map(p => p.join(''));
    fc.assert(
      fc.property(fc.oneof(uuid, hex(32), fc.string({ maxLength: 40 })), s => {
        const n = normalizePodUid(s);
        if (n === undefined) return;
        expect(n).toMatch(/^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/);
        expect(normalizePodUid(n)).toBe(n);
        expect(normalizePodUid(s.toUpperCase())).toBe(n);
        expect(normalizePodUid(s.replace(/-/g, '_'))).toBe(n);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('layout: classify never escapes its root', () => {
  const seg = fc.oneof(
    fc.constantFrom('..', '.', '', 'volumes', 'kubernetes.io~empty-dir', 'hexr-context', 'x.json', '.x.json', '..json', 'a.json'),
    fc.uuid(),
    fc.string({ maxLength: 12 }).filter(s => !s.includes('\0')),
  );
  it('kubelet: any path under (or above) the root classifies to a context dir of one pod below pods/, or to nothing', () => {
    const root = '/var/lib/kubelet';
    const layout = createLayout({ kind: 'kubelet', kubeletRoot: root, volume: 'hexr-context' });
    let classified = 0;
    // Mostly the shape of a marker path, each part sometimes replaced, dotted or extended, so
    // that the accepting branch (a classified path) is common; plus free-form arrays.
    const near = (want: fc.Arbitrary<string>): fc.Arbitrary<string[]> =>
      fc.oneof({ arbitrary: want.map(w => [w]), weight: 5 }, { arbitrary: seg.map(x => [x]), weight: 1 }, { arbitrary: fc.tuple(seg, want).map(([x, w]) => [x, w]), weight: 1 });
    const shaped = fc
      .tuple(near(fc.uuid()), near(fc.constant('volumes')), near(fc.constant('kubernetes.io~empty-dir')), near(fc.constant('hexr-context')), fc.option(near(fc.constantFrom('a.json', 'x.json', '..json'))))
      .map(parts => parts.flatMap(x => x ?? []));
    fc.assert(
      fc.property(fc.oneof(fc.array(seg, { maxLength: 7 }), shaped), segs => {
        const p = path.join(root, 'pods', ...segs);
        const c = layout.classify(p);
        if (c === undefined) return;
        classified++;
        expect(c.dir.path.startsWith(`${root}/pods/`)).toBe(true);
        expect(c.dir.components).toHaveLength(4);
        for (const comp of c.dir.components) expect(comp === '..' || comp === '.' || comp === '' || comp.includes('/')).toBe(false);
        expect(c.dir.podUid).toBe(normalizePodUid(c.dir.components[0]!));
        expect(c.dir.scope).toBe(`pod:${c.dir.podUid}`);
        if (c.name !== undefined) {
          expect(c.name.includes('/')).toBe(false);
          expect(path.join(c.dir.path, c.name)).toBe(path.resolve(p));
        } else {
          expect(c.dir.path).toBe(path.resolve(p));
        }
      }),
      { numRuns: 2000 },
    );
    // The property means something only if the generator reaches the accepting branch.
    expect(classified).toBeGreaterThan(150);
  });

  it('flat: only the directory itself and its direct entries classify', () => {
    const root = '/tmp/hexr-context';
    const layout = createLayout({ kind: 'flat', contextRoot: root });
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 4 }), segs => {
        const p = path.join(root, ...segs);
        const c = layout.classify(p);
        if (c === undefined) return;
        expect(c.dir.path).toBe(root);
        if (c.name !== undefined) expect(path.dirname(path.resolve(p))).toBe(root);
      }),
      { numRuns: 1000 },
    );
  });
});

describe.skipIf(process.platform !== 'linux')('marker reading pipeline (secure-fs + parser) on arbitrary file contents', () => {
  let dir: string;
  let dirFd: number;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-hard-prop-'));
    dirFd = openDirNoFollow(path.dirname(dir), [path.basename(dir)])!;
  });
  afterAll(() => {
    fs.closeSync(dirFd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('never throws; returns exactly the file bytes when under the cap; refuses from the size when over it', () => {
    const content = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.string({ unit: 'binary', maxLength: 300 }).map(s => Buffer.from(s)),
      validMarker.map(m => Buffer.from(JSON.stringify(m))),
    );
    let i = 0;
    fc.assert(
      fc.property(content, fc.integer({ min: 0, max: 700 }), (bytes, cap) => {
        const name = `m${i++}.json`;
        fs.writeFileSync(path.join(dir, name), bytes);
        try {
          const r = readMarkerFile(dirFd, name, cap);
          if (bytes.length > cap) {
            expect(r.kind).toBe('rejected');
            if (r.kind === 'rejected') expect(r.reason).toBe(`too-large: ${bytes.length} bytes, limit ${cap}`);
            return;
          }
          expect(r.kind).toBe('ok');
          if (r.kind !== 'ok') return;
          expect(Buffer.compare(r.bytes, Buffer.from(bytes))).toBe(0);
          expect(r.identity.size).toBe(bytes.length);
          const parsed = parseMarkerBytes(r.bytes, Math.max(cap, 1));
          expect(typeof parsed.ok).toBe('boolean');
          // Unchanged file, known identity: not read again.
          expect(readMarkerFile(dirFd, name, cap, r.identity).kind).toBe('unchanged');
        } finally {
          fs.unlinkSync(path.join(dir, name));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('the default cap is the documented 4 KiB', () => {
    expect(MARKER_MAX_BYTES).toBe(4096);
  });
});
