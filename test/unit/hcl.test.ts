import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseHcl, ParseError, type HclValue, type HclObject } from '../../src/core/hcl.js';

/** Plain-prototype deep copy so toEqual compares values, not prototypes. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function parsed(text: string): unknown {
  return plain(parseHcl(text));
}

function parseErrorOf(text: string): ParseError {
  try {
    parseHcl(text);
  } catch (err) {
    if (err instanceof ParseError) return err;
    throw err;
  }
  throw new Error(`expected a ParseError for ${JSON.stringify(text)}`);
}

describe('parseHcl: the strings SPIRE sends (spire-plugin-protocol.md 1.2, ecosystem.md 3)', () => {
  it('reads the HCL printer output of a plain-key plugin_data block', () => {
    expect(parsed('foo = "bar"\n\nlist = ["a", "b"]\n\nn = 3\n\nnested {\n  x = true\n}')).toEqual({
      foo: 'bar',
      list: ['a', 'b'],
      n: 3,
      nested: { x: true },
    });
  });

  it('reads a one-item plugin_data = { } block', () => {
    expect(parsed('foo = "bar"')).toEqual({ foo: 'bar' });
  });

  it('reads plugin_data = "raw string" as a string document, quotes removed', () => {
    expect(parseHcl('"raw string"')).toBe('raw string');
  });

  it('reads the quoted keys a JSON agent config produces', () => {
    expect(parsed('"foo" = "bar"\n\n"n" = 3\n\n"list" = ["a"]')).toEqual({ foo: 'bar', n: 3, list: ['a'] });
  });

  it('reads empty text as no options', () => {
    expect(parsed('')).toEqual({});
    expect(parsed('  \n# only a comment\n')).toEqual({});
  });

  it('reads the ecosystem HCL sample with plain keys', () => {
    expect(
      parsed('socket_path = "/run/hexr/agent.sock"\n\nmax_pids = 4096\n\nlabels = ["a", "b"]\n\nnested {\n  x = 1\n}'),
    ).toEqual({ socket_path: '/run/hexr/agent.sock', max_pids: 4096, labels: ['a', 'b'], nested: { x: 1 } });
  });

  it('reads the ecosystem JSON-agent sample with quoted keys and key = { } blocks', () => {
    expect(parsed('"socket_path" = "/run/hexr/agent.sock"\n\n"max_pids" = 4096\n\n"nested" = {\n  "x" = 1\n}')).toEqual({
      socket_path: '/run/hexr/agent.sock',
      max_pids: 4096,
      nested: { x: 1 },
    });
  });

  it('reads the unprinted one-line form with items separated only by spaces', () => {
    expect(parsed('foo = "bar" list = ["a","b"] n = 3 nested { x = true }')).toEqual({
      foo: 'bar',
      list: ['a', 'b'],
      n: 3,
      nested: { x: true },
    });
  });

  it('reads plugin_data_file content that is JSON', () => {
    expect(parsed('{"daemon_socket": "/s.sock", "selectors": ["tenant"], "n": 1.5}\n')).toEqual({
      daemon_socket: '/s.sock',
      selectors: ['tenant'],
      n: 1.5,
    });
  });
});

describe('parseHcl: syntax', () => {
  it('accepts all three comment styles', () => {
    expect(parsed('# hash\na = 1 // slashes\n/* block\n comment */ b = 2')).toEqual({ a: 1, b: 2 });
  });

  it('decodes string escapes', () => {
    expect(parsed(String.raw`s = "q\" b\\ n\n t\t u\u00e9 U\U0001F600 x\x41 o\101"`)).toEqual({
      s: 'q" b\\ n\n t\t ué U😀 xA oA',
    });
  });

  it('reads ints, negative numbers, floats, exponents, hex and octal like HCL v1', () => {
    expect(parsed('a = 0\nb = -7\nc = 1.25\nd = 1e3\ne = 0x1F\nf = 0755\ng = -2.5E-1')).toEqual({
      a: 0, b: -7, c: 1.25, d: 1000, e: 31, f: 493, g: -0.25,
    });
  });

  it('reads lists with a trailing comma, nested lists and objects in lists', () => {
    expect(parsed('l = [1, [true, false], { k = "v" },]')).toEqual({ l: [1, [true, false], { k: 'v' }] });
  });

  it('reads labelled blocks as nested objects', () => {
    expect(parsed('service "a" "b" { port = 1 }')).toEqual({ service: { a: { b: { port: 1 } } } });
  });

  it('accepts commas between object items', () => {
    expect(parsed('o = { a = 1, b = 2 }')).toEqual({ o: { a: 1, b: 2 } });
  });

  it('builds objects without a prototype', () => {
    const doc = parseHcl('a { b = 1 }') as HclObject;
    expect(Object.getPrototypeOf(doc)).toBeNull();
    expect(Object.getPrototypeOf(doc['a'])).toBeNull();
  });
});

describe('parseHcl: errors carry line:column', () => {
  const cases: [string, string, number, number, string][] = [
    ['an unterminated string', 'a = 1\nb = "oops', 2, 5, 'unterminated string'],
    ['a bare word value', 'a = yes', 1, 5, 'unexpected word "yes"'],
    ['a missing "="', 'a 1', 1, 3, 'expected "=" or "{"'],
    ['an unclosed block', 'a {\n  b = 1\n', 3, 1, 'expected "}"'],
    ['an unclosed list', 'a = [1, 2', 1, 10, 'expected "," or "]"'],
    ['a duplicate key', 'a = 1\na = 2', 2, 1, 'duplicate key "a"'],
    ['a __proto__ key', '"__proto__" = { x = 1 }', 1, 1, 'key "__proto__" is not allowed'],
    ['a constructor key inside a block', 'a {\n constructor = 1 }', 2, 2, 'key "constructor" is not allowed'],
    ['an unterminated block comment', 'a = 1 /* x', 1, 7, 'unterminated /* comment'],
    ['a heredoc', 'a = <<EOF\nx\nEOF', 1, 5, 'heredoc'],
    ['an invalid escape', 'a = "\\q"', 1, 6, 'invalid escape'],
    ['a number too large', 'a = 99999999999999999999', 1, 5, 'out of range'],
    ['a string followed by junk', '"raw" junk', 1, 11, 'expected "{" or a block label'],
    ['invalid JSON', '{"a": }', 1, 7, 'invalid JSON'],
    ['JSON null', '{"a": null}', 1, 1, 'null is not supported'],
    ['a JSON __proto__ key', '{"__proto__": {"x": 1}}', 1, 1, 'key "__proto__" is not allowed'],
  ];
  it.each(cases)('reports %s', (_name, text, line, column, reason) => {
    const err = parseErrorOf(text);
    expect(err.reason).toContain(reason);
    expect([err.line, err.column]).toEqual([line, column]);
    expect(err.message).toBe(`${line}:${column}: ${err.reason}`);
  });

  it('refuses nesting deeper than 64 levels instead of overflowing the stack', () => {
    expect(parseErrorOf(`a = ${'['.repeat(10_000)}`).reason).toContain('nesting deeper');
    expect(parseErrorOf(`{"a": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`).reason).toContain('nesting deeper');
  });
});

// ---- property tests --------------------------------------------------------

/** A tiny HCL v1 printer (the shapes SPIRE's printer emits). */
function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

function printKey(k: string, quoteKeys: boolean): string {
  return !quoteKeys && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(k) && k !== 'true' && k !== 'false' ? k : quote(k);
}

function printValue(v: HclValue, indent: string, quoteKeys: boolean): string {
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(x => printValue(x, indent, quoteKeys)).join(', ')}]`;
  return `{\n${printItems(v, indent + '  ', quoteKeys)}\n${indent}}`;
}

function printItems(o: HclObject, indent: string, quoteKeys: boolean): string {
  return Object.entries(o)
    .map(([k, v]) => {
      const key = printKey(k, quoteKeys);
      if (typeof v === 'object' && !Array.isArray(v) && !quoteKeys) {
        return `${indent}${key} ${printValue(v, indent, quoteKeys)}`;
      }
      return `${indent}${key} = ${printValue(v, indent, quoteKeys)}`;
    })
    .join('\n\n');
}

const forbidden = new Set(['__proto__', 'constructor', 'prototype']);
const keyArb = fc.oneof(fc.stringMatching(/^[a-z_][a-z0-9_-]{0,8}$/), fc.string({ maxLength: 8, unit: 'binary' }))
  .filter(k => !forbidden.has(k));
const numberArb = fc.oneof(
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter(d => !Object.is(d, -0) && Math.abs(d) < Number.MAX_SAFE_INTEGER),
);
const { value: valueArb } = fc.letrec<{ value: HclValue; object: HclObject }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }),
    numberArb,
    fc.boolean(),
    fc.array(tie('value'), { maxLength: 4 }),
    tie('object'),
  ),
  object: fc.dictionary(keyArb, tie('value'), { maxKeys: 4 }),
}));
const docArb = fc.dictionary(keyArb, valueArb, { maxKeys: 6 }) as fc.Arbitrary<HclObject>;

describe('parseHcl: properties', () => {
  it('never throws anything but ParseError on arbitrary text', () => {
    const hclish = fc.array(
      fc.constantFrom('a', '"', '=', '{', '}', '[', ']', ',', ' ', '\n', '#', '/', '*', '\\', '1', '-', '.', 'e', 'x', 'true', '<<', 'u'),
      { maxLength: 40 },
    ).map(parts => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), hclish), text => {
        try {
          parseHcl(text);
        } catch (err) {
          if (!(err instanceof ParseError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips what it accepts through an HCL printer (plain and quoted keys)', () => {
    fc.assert(
      fc.property(docArb, fc.boolean(), (doc, quoteKeys) => {
        const text = printItems(doc, '', quoteKeys);
        expect(plain(parseHcl(text))).toEqual(plain(doc));
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips reparsed output: parse(print(parse(x))) equals parse(x)', () => {
    fc.assert(
      fc.property(docArb, doc => {
        const once = parseHcl(printItems(doc, '', false)) as HclObject;
        expect(plain(parseHcl(printItems(once, '', true)))).toEqual(plain(once));
      }),
      { numRuns: 200 },
    );
  });
});
