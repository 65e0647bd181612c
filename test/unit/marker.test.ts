import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  MARKER_MAX_BYTES,
  NAME_RE,
  PID_MAX,
  markerFileName,
  parseMarker,
  parseMarkerBytes,
  type Marker,
  type MarkerResult,
} from '../../src/core/marker.js';

const MINIMAL = { agent_name: 'research-crew', tenant: 'acme', process_role: 'researcher', container_pid: 7 };
const FULL = {
  ...MINIMAL,
  framework: 'crewai',
  resources: ['aws_s3:read', 'db/orders:*'],
  pid_namespace: 4026532201,
  process_start_time: 123456,
};
const ALLOWED_KEYS = new Set(Object.keys(FULL));

function accepted(r: MarkerResult): Marker {
  if (!r.ok) throw new Error(`expected an accepted marker, got rejection: ${r.reason}`);
  return r.marker;
}

function rejection(r: MarkerResult): string {
  if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r.marker)}`);
  return r.reason;
}

const withField = (key: string, value: unknown): string => JSON.stringify({ ...MINIMAL, [key]: value });

describe('parseMarker: valid markers', () => {
  it('accepts a minimal marker with the four required fields', () => {
    expect(accepted(parseMarker(JSON.stringify(MINIMAL)))).toEqual(MINIMAL);
  });

  it('accepts a full marker with every optional field', () => {
    expect(accepted(parseMarker(JSON.stringify(FULL)))).toEqual(FULL);
  });

  it('returns a frozen marker with a frozen resources array', () => {
    const m = accepted(parseMarker(JSON.stringify(FULL)));
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.resources)).toBe(true);
  });

  it('copies resources instead of keeping the parsed array', () => {
    const m = accepted(parseMarker(JSON.stringify(FULL)));
    expect(Object.getPrototypeOf(m.resources)).toBe(Array.prototype);
    expect(m.resources).toEqual(FULL.resources);
  });

  it('accepts container_pid 1 and PID_MAX (2^22) as bounds', () => {
    expect(accepted(parseMarker(withField('container_pid', 1))).container_pid).toBe(1);
    expect(accepted(parseMarker(withField('container_pid', PID_MAX))).container_pid).toBe(PID_MAX);
  });

  it('accepts an integer written in exponent notation (JSON has one number type)', () => {
    expect(accepted(parseMarker('{"agent_name":"a","tenant":"t","process_role":"r","container_pid":1e3}')).container_pid).toBe(1000);
  });

  it('accepts process_start_time 0 (a process started in the boot tick)', () => {
    expect(accepted(parseMarker(withField('process_start_time', 0))).process_start_time).toBe(0);
  });

  it('normalizes process_start_time -0 to 0', () => {
    const m = accepted(parseMarker('{"agent_name":"a","tenant":"t","process_role":"r","container_pid":1,"process_start_time":-0}'));
    expect(Object.is(m.process_start_time, 0)).toBe(true);
  });

  it('accepts JSON surrounded by whitespace', () => {
    expect(accepted(parseMarker(`\n  ${JSON.stringify(MINIMAL)}\n\n`))).toEqual(MINIMAL);
  });

  it('accepts exactly 32 resources and rejects 33', () => {
    const r32 = Array.from({ length: 32 }, (_, i) => `r${i}`);
    expect(accepted(parseMarker(withField('resources', r32))).resources).toEqual(r32);
    expect(rejection(parseMarker(withField('resources', [...r32, 'r32'])))).toContain('bad resources');
  });

  it('accepts an empty resources array', () => {
    expect(accepted(parseMarker(withField('resources', []))).resources).toEqual([]);
  });
});

describe('parseMarker: required fields', () => {
  it.each(['agent_name', 'tenant', 'process_role', 'container_pid'])('rejects a marker without %s, naming the field', key => {
    const obj: Record<string, unknown> = { ...MINIMAL };
    delete obj[key];
    const reason = rejection(parseMarker(JSON.stringify(obj)));
    expect(reason).toMatch(/^invalid-schema: /);
    expect(reason).toContain(`missing ${key}`);
  });

  it('treats an explicit null as a wrong type, not as missing', () => {
    expect(rejection(parseMarker(withField('tenant', null)))).toContain('bad tenant');
  });

  it('lists every problem at once', () => {
    const reason = rejection(parseMarker(JSON.stringify({ agent_name: 'a/b', container_pid: 0, framework: 3 })));
    for (const p of ['bad agent_name', 'missing tenant', 'missing process_role', 'bad container_pid', 'bad framework']) {
      expect(reason).toContain(p);
    }
  });

  it('rejects the whole marker when only an optional field is bad (never half-used)', () => {
    expect(rejection(parseMarker(withField('pid_namespace', 'x')))).toContain('bad pid_namespace');
  });
});

describe('parseMarker: wrong types', () => {
  it.each<[string, unknown]>([
    ['agent_name', 5],
    ['agent_name', ['research']],
    ['agent_name', { v: 'research' }],
    ['tenant', true],
    ['process_role', []],
    ['container_pid', '42'],
    ['container_pid', true],
    ['container_pid', [42]],
    ['container_pid', null],
    ['framework', 1],
    ['framework', null],
    ['resources', 'aws_s3:read'],
    ['resources', [1]],
    ['resources', [null]],
    ['resources', [['nested']]],
    ['resources', { 0: 'a' }],
    ['pid_namespace', '4026532201'],
    ['pid_namespace', 1.5],
    ['process_start_time', true],
    ['process_start_time', '123'],
  ])('rejects %s = %j', (key, value) => {
    expect(rejection(parseMarker(withField(key, value)))).toContain(`bad ${key}`);
  });
});

describe('parseMarker: PIDs', () => {
  it.each<[string, string]>([
    ['negative', '-1'],
    ['zero', '0'],
    ['negative zero', '-0'],
    ['a float', '7.5'],
    ['above PID_MAX', String(PID_MAX + 1)],
    ['2^53', '9007199254740992'],
    ['huge (overflows to Infinity)', '1e400'],
    ['a numeric string', '"7"'],
    ['an empty string', '""'],
  ])('rejects container_pid that is %s', (_what, literal) => {
    const text = `{"agent_name":"a","tenant":"t","process_role":"r","container_pid":${literal}}`;
    expect(rejection(parseMarker(text))).toContain('bad container_pid');
  });

  it.each([0, -1, 2 ** 32])('rejects pid_namespace %d outside [1, 2^32-1]', v => {
    expect(rejection(parseMarker(withField('pid_namespace', v)))).toContain('bad pid_namespace');
  });

  it('accepts pid_namespace 2^32-1 (an inode number fits 32 bits here)', () => {
    expect(accepted(parseMarker(withField('pid_namespace', 0xffff_ffff))).pid_namespace).toBe(0xffff_ffff);
  });

  it.each([-1, 0.5, 2 ** 53])('rejects process_start_time %d', v => {
    expect(rejection(parseMarker(withField('process_start_time', v)))).toContain('bad process_start_time');
  });
});

describe('parseMarker: name-like fields', () => {
  const bad: [string, string][] = [
    ['a slash', 'a/b'],
    ['a colon', 'a:b'],
    ['dot-dot', '..'],
    ['a single dot', '.'],
    ['a space', 'a b'],
    ['200 characters', 'x'.repeat(200)],
    ['64 characters', 'x'.repeat(64)],
    ['the empty string', ''],
    ['a leading dot', '.hidden'],
    ['a leading dash', '-rf'],
    ['a leading underscore', '_x'],
    ['a trailing newline', 'abc\n'],
    ['a NUL byte', 'a\u0000b'],
    ['a non-ASCII letter', 'résumé'],
    ['a path traversal', '../../etc'],
    ['a selector separator', 'role,tenant'],
  ];
  for (const key of ['agent_name', 'tenant', 'process_role', 'framework']) {
    it.each(bad)(`rejects ${key} with %s`, (_what, value) => {
      expect(rejection(parseMarker(withField(key, value)))).toContain(`bad ${key}`);
    });
  }

  it.each(['a', 'A', '0', 'x'.repeat(63), 'a.b_c-d', 'Researcher2', '9-lives'])('accepts the name %j', value => {
    expect(accepted(parseMarker(withField('process_role', value))).process_role).toBe(value);
  });

  it('NAME_RE is anchored at both ends (no multiline escape)', () => {
    expect(NAME_RE.test('ok\nbad/part')).toBe(false);
    expect(NAME_RE.test('bad/part\nok')).toBe(false);
  });

  it.each(['aws_s3:read', 'db/orders:*', 'x'.repeat(128)])('accepts the resource %j', r => {
    expect(accepted(parseMarker(withField('resources', [r]))).resources).toEqual([r]);
  });

  it.each(['', ' space', 'x'.repeat(129), ':leading', 'a b', 'new\nline'])('rejects the resource %j', r => {
    expect(rejection(parseMarker(withField('resources', [r])))).toContain('bad resources');
  });
});

describe('parseMarker: prototype pollution (hostile keys)', () => {
  const hostile = JSON.stringify(MINIMAL).replace(
    /^\{/,
    '{"__proto__":{"polluted":"yes","agent_name":"evil"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"},',
  );

  it('accepts the marker, ignores the hostile keys and copies none of them', () => {
    const m = accepted(parseMarker(hostile));
    expect(m).toEqual(MINIMAL);
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    for (const k of ['__proto__', 'constructor', 'prototype', 'polluted']) {
      expect(Object.prototype.hasOwnProperty.call(m, k)).toBe(false);
    }
    expect(Object.keys(m).every(k => ALLOWED_KEYS.has(k))).toBe(true);
  });

  it('leaves Object.prototype untouched', () => {
    parseMarker(hostile);
    parseMarkerBytes(Buffer.from(hostile));
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'agent_name')).toBe(false);
  });

  it('does not take a required field from a "__proto__" object', () => {
    const text = '{"__proto__":{"agent_name":"evil"},"tenant":"t","process_role":"r","container_pid":1}';
    expect(rejection(parseMarker(text))).toContain('missing agent_name');
  });

  it('reads only own properties, even when Object.prototype was polluted elsewhere', () => {
    const proto = Object.prototype as Record<string, unknown>;
    try {
      proto['agent_name'] = 'inherited';
      proto['framework'] = 'inherited';
      const text = '{"tenant":"t","process_role":"r","container_pid":1}';
      expect(rejection(parseMarker(text))).toContain('missing agent_name');
      const m = accepted(parseMarker(JSON.stringify(MINIMAL)));
      expect(Object.prototype.hasOwnProperty.call(m, 'framework')).toBe(false);
    } finally {
      delete proto['agent_name'];
      delete proto['framework'];
    }
  });
});

describe('parseMarkerBytes: regression fixtures (test/fixtures/markers)', () => {
  const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/markers/${name}`, import.meta.url));

  it('reads the SDK-shaped full marker, dropping the fields it does not know', () => {
    expect(accepted(parseMarkerBytes(fixture('full.json')))).toEqual({
      agent_name: 'research-crew',
      tenant: 'acme',
      process_role: 'researcher',
      container_pid: 42,
      framework: 'crewai',
      resources: ['aws_s3:read', 'db/orders:*'],
      pid_namespace: 4026532201,
      process_start_time: 1234567,
    });
  });

  it('reads the prototype-pollution fixture without polluting or copying anything', () => {
    const m = accepted(parseMarkerBytes(fixture('proto-pollution.json')));
    expect(m).toEqual(MINIMAL);
    expect(Object.keys(m).sort()).toEqual(Object.keys(MINIMAL).sort());
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
    expect(typeof Object.prototype.hasOwnProperty).toBe('function');
  });
});

describe('parseMarker: shapes that are not a marker object', () => {
  it.each(['[]', '[1,2]', 'null', '42', '"text"', 'true', 'false'])('rejects the top-level JSON value %s', text => {
    expect(rejection(parseMarker(text))).toBe('invalid-json: not an object');
  });

  it.each([
    ['', 'invalid-json: line 1, column 1 (byte 0): unexpected end of input, a value was expected'],
    ['   ', 'invalid-json: line 1, column 4 (byte 3): unexpected end of input, a value was expected'],
    ['{', 'invalid-json: line 1, column 2 (byte 1): unexpected end of input, a double-quoted property name was expected'],
    ['{"agent_name":}', "invalid-json: line 1, column 15 (byte 14): unexpected '}', a value was expected"],
    ["{'a':1}", "invalid-json: line 1, column 2 (byte 1): unexpected ''', a double-quoted property name was expected"],
    ['{"a":1,}', "invalid-json: line 1, column 8 (byte 7): unexpected '}', a double-quoted property name was expected"],
    ['NaN', "invalid-json: line 1, column 1 (byte 0): unexpected 'N', a value was expected"],
    ['{"a":1}{"b":2}', "invalid-json: line 1, column 8 (byte 7): unexpected '{' after the JSON value"],
    ['\ufeff{}', 'invalid-json: line 1, column 1 (byte 0): unexpected U+FEFF, a value was expected'],
    ['{\n  "agent_name": "é",\n  "tenant" "acme"\n}', "invalid-json: line 3, column 12 (byte 35): unexpected '\"', ':' was expected after the property name"],
  ])('rejects the malformed JSON text %j and says where', (text, reason) => {
    expect(rejection(parseMarker(text))).toBe(reason);
    expect(reason.split(':')[0]).toBe('invalid-json'); // the metrics label
  });

  it('ignores unknown fields and never copies them', () => {
    const m = accepted(parseMarker(JSON.stringify({ ...FULL, evil: '$(rm -rf /)', host_pid: 1, selectors: ['x'] })));
    expect(Object.keys(m).sort()).toEqual([...ALLOWED_KEYS].sort());
    expect(m).toEqual(FULL);
  });

  it('uses the last value of a duplicated key, as JSON.parse does', () => {
    const text = '{"agent_name":"first","agent_name":"second","tenant":"t","process_role":"r","container_pid":1}';
    expect(accepted(parseMarker(text)).agent_name).toBe('second');
  });

  it('rejects 3000 levels of nested arrays without throwing (cap raised to fit them)', () => {
    const deep = '['.repeat(3000) + ']'.repeat(3000);
    expect(() => parseMarker(deep, 10_000)).not.toThrow();
    expect(rejection(parseMarker(deep, 10_000))).toBe('invalid-json: not an object');
  });

  it('handles 2000 levels of nested arrays within the default 4 KiB cap', () => {
    const deep = '['.repeat(2000) + ']'.repeat(2000);
    expect(deep.length).toBeLessThanOrEqual(MARKER_MAX_BYTES);
    expect(rejection(parseMarker(deep))).toBe('invalid-json: not an object');
  });

  it('accepts a marker carrying a deeply nested unknown field, without copying it', () => {
    const unknown = '{"x":'.repeat(500) + '1' + '}'.repeat(500);
    const text = JSON.stringify(MINIMAL).replace(/\}$/, `,"junk":${unknown}}`);
    expect(text.length).toBeLessThanOrEqual(MARKER_MAX_BYTES);
    const m = accepted(parseMarker(text));
    expect(m).toEqual(MINIMAL);
  });

  it('does not throw on 100000 levels of nested objects when the cap allows them', () => {
    const deep = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000);
    expect(() => parseMarker(deep, deep.length)).not.toThrow();
    expect(parseMarker(deep, deep.length).ok).toBe(false);
  });
});

describe('parseMarker: size cap', () => {
  const padded = (total: number): string => {
    const base = JSON.stringify(MINIMAL);
    return base + ' '.repeat(total - base.length);
  };

  it('accepts a marker of exactly MARKER_MAX_BYTES bytes', () => {
    expect(accepted(parseMarker(padded(MARKER_MAX_BYTES)))).toEqual(MINIMAL);
  });

  it('rejects a marker one byte over the cap, naming the cap', () => {
    expect(rejection(parseMarker(padded(MARKER_MAX_BYTES + 1)))).toBe(`too-large: more than ${MARKER_MAX_BYTES} bytes`);
  });

  it('honours a smaller cap passed by the caller', () => {
    expect(rejection(parseMarker(JSON.stringify(MINIMAL), 10))).toMatch(/^too-large/);
  });

  it('counts UTF-8 bytes, not UTF-16 code units, for text input', () => {
    // 2000 three-byte characters: 2000 code units but 6000 bytes.
    const text = JSON.stringify({ ...MINIMAL, note: '\u20ac'.repeat(2000) });
    expect(text.length).toBeLessThan(MARKER_MAX_BYTES);
    expect(rejection(parseMarker(text))).toMatch(/^too-large/);
    expect(rejection(parseMarkerBytes(Buffer.from(text)))).toMatch(/^too-large/);
  });

  it('checks the size before parsing a huge input', () => {
    const huge = '['.repeat(5_000_000);
    expect(rejection(parseMarker(huge))).toMatch(/^too-large/);
  });
});

describe('parseMarkerBytes', () => {
  it('accepts the UTF-8 bytes of a valid marker', () => {
    expect(accepted(parseMarkerBytes(Buffer.from(JSON.stringify(FULL))))).toEqual(FULL);
  });

  it('accepts a marker with a UTF-8 byte order mark', () => {
    expect(accepted(parseMarkerBytes(Buffer.from('\ufeff' + JSON.stringify(MINIMAL))))).toEqual(MINIMAL);
  });

  it('rejects a byte array over the cap before decoding it', () => {
    const bytes = new Uint8Array(MARKER_MAX_BYTES + 1).fill(0xff);
    expect(rejection(parseMarkerBytes(bytes))).toBe(`too-large: more than ${MARKER_MAX_BYTES} bytes`);
  });

  it.each<[string, number[]]>([
    ['a lone continuation byte', [0x80]],
    ['0xff', [0xff]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['an encoded UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated 3-byte sequence', [0xe2, 0x82]],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ])('rejects invalid UTF-8 (%s) inside a string value, never replacing it', (_what, bad) => {
    const head = Buffer.from('{"agent_name":"a","tenant":"t","process_role":"');
    const tail = Buffer.from('","container_pid":1}');
    expect(rejection(parseMarkerBytes(Buffer.concat([head, Buffer.from(bad), tail])))).toBe('invalid-utf8');
  });

  it('rejects a file of NUL bytes as invalid JSON', () => {
    expect(rejection(parseMarkerBytes(new Uint8Array(16)))).toBe('invalid-json: line 1, column 1 (byte 0): unexpected U+0000, a value was expected');
  });

  it('rejects an empty file as invalid JSON', () => {
    expect(rejection(parseMarkerBytes(new Uint8Array(0)))).toBe('invalid-json: line 1, column 1 (byte 0): unexpected end of input, a value was expected');
  });
});

describe('markerFileName', () => {
  it('names the file {agent_name}-{process_role}.json', () => {
    expect(markerFileName('research-crew', 'researcher')).toBe('research-crew-researcher.json');
  });
});

// ---------------------------------------------------------------------------
// Properties

/** Mostly valid values, sometimes a broken one, so both branches are reached. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>): fc.Arbitrary<T | U> =>
  fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: invalid, weight: 1 });
const goodName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
const nameArb = mostly(goodName, fc.oneof(fc.constantFrom('', '..', 'a/b', 'x'.repeat(64), '-x', '.x', 'a b'), fc.string()));
const anyJson = fc.jsonValue({ maxDepth: 2 });
const pidArb = mostly(fc.integer({ min: 1, max: PID_MAX }), fc.oneof(fc.constantFrom(0, -1, PID_MAX + 1, 1.5, -0), fc.double(), anyJson));
const nsArb = mostly(fc.integer({ min: 1, max: 0xffff_ffff }), fc.constantFrom(0, 2 ** 32, -3, 0.25));
const startArb = mostly(fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, -0)), fc.constantFrom(-1, 2 ** 53, 1e300, 0.5));
const resourcesArb = mostly(
  fc.array(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/*-]{0,20}$/), { maxLength: 32 }),
  fc.oneof(fc.array(fc.string(), { minLength: 1, maxLength: 3 }), anyJson),
);
const markerLike = fc.record(
  {
    agent_name: nameArb,
    tenant: nameArb,
    process_role: nameArb,
    container_pid: pidArb,
    framework: nameArb,
    resources: resourcesArb,
    pid_namespace: nsArb,
    process_start_time: startArb,
    extra: anyJson,
  },
  { requiredKeys: ['agent_name', 'tenant', 'process_role', 'container_pid'] },
);

describe('parseMarker: properties', () => {
  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.json()), s => {
        const r = parseMarker(s);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), bytes => {
        const r = parseMarkerBytes(bytes);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });

  it('every accepted marker round-trips through JSON and keeps only known fields', () => {
    let acceptedCount = 0;
    fc.assert(
      fc.property(markerLike, obj => {
        const r = parseMarker(JSON.stringify(obj));
        if (obj.process_start_time === 0 && r.ok) expect(Object.is(r.marker.process_start_time, 0)).toBe(true);
        if (!r.ok) return;
        acceptedCount++;
        expect(Object.keys(r.marker).every(k => ALLOWED_KEYS.has(k))).toBe(true);
        // Every kept value is the input value (as JSON carries it: -0 is written "0").
        const input = JSON.parse(JSON.stringify(obj)) as Record<string, unknown>;
        for (const [k, v] of Object.entries(r.marker)) expect(v).toEqual(input[k]);
        const again = parseMarker(JSON.stringify(r.marker));
        expect(again).toEqual(r);
        const bytes = parseMarkerBytes(Buffer.from(JSON.stringify(r.marker)));
        expect(bytes).toEqual(r);
      }),
      { numRuns: 1000 },
    );
    // The generator must actually reach the accepting branch for the property to mean anything.
    expect(acceptedCount).toBeGreaterThan(100);
  });

  it('rejects text as too large exactly when its UTF-8 encoding exceeds the cap', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 })), fc.integer({ min: 0, max: 120 }), (s, cap) => {
        const r = parseMarker(s, cap);
        const tooLarge = !r.ok && r.reason.startsWith('too-large');
        expect(tooLarge).toBe(Buffer.byteLength(s, 'utf8') > cap);
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts exactly the objects whose required fields satisfy the rules', () => {
    fc.assert(
      fc.property(
        fc.record({ agent_name: nameArb, tenant: nameArb, process_role: nameArb, container_pid: fc.oneof(fc.integer({ min: -5, max: PID_MAX + 5 }), fc.double()) }),
        obj => {
          const valid =
            NAME_RE.test(obj.agent_name) &&
            NAME_RE.test(obj.tenant) &&
            NAME_RE.test(obj.process_role) &&
            Number.isSafeInteger(obj.container_pid) &&
            obj.container_pid >= 1 &&
            obj.container_pid <= PID_MAX;
          expect(parseMarker(JSON.stringify(obj)).ok).toBe(valid);
        },
      ),
      { numRuns: 500 },
    );
  });
});
