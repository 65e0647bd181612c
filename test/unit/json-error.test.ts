import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { locateJsonError } from '../../src/core/json-error.js';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('locateJsonError', () => {
  it('finds nothing wrong in valid JSON', () => {
    for (const t of ['{}', '[]', ' {"a": [1, -0.5e+3, true, false, null, "x\\u00e9\\n"]} ', '0', '"\ud800"', '[[[[]]]]']) {
      expect(locateJsonError(t), t).toBeUndefined();
    }
  });

  it('counts lines, characters and UTF-8 bytes up to the error', () => {
    expect(locateJsonError('{"é😀":\n  1,\n  x}')).toEqual({ line: 3, column: 3, byte: 18, problem: "unexpected 'x', a double-quoted property name was expected" });
  });

  it('never echoes anything but printable ASCII of the input', () => {
    for (const t of ['{"a":\u001b[2J}', '{"a":\u202e}', '"\u0007"', '{"a":1\n\u0085}']) {
      const loc = locateJsonError(t);
      expect(loc, t).toBeDefined();
      expect(loc!.problem).toMatch(/^[\x20-\x7e]*$/);
    }
  });

  it('survives nesting far deeper than a recursive parser could', () => {
    const deep = '['.repeat(200_000);
    expect(locateJsonError(deep)?.problem).toBe('unexpected end of input, a value was expected');
  });

  it('agrees with JSON.parse on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'{}[]",:0123456789-+.eEtrufalsn \n\t\\/bu"aé\u0000\u001f'.split('')), maxLength: 30 }), text => {
        expect(locateJsonError(text) === undefined).toBe(parses(text));
      }),
      { numRuns: 20_000 },
    );
  });

  it('agrees with JSON.parse on valid JSON with one character changed, dropped or added', () => {
    fc.assert(
      fc.property(fc.json(), fc.nat(), fc.constantFrom('drop', 'insert', 'replace'), fc.string({ minLength: 1, maxLength: 1 }), (json, at, op, ch) => {
        const i = json.length === 0 ? 0 : at % json.length;
        const text = op === 'drop' ? json.slice(0, i) + json.slice(i + 1) : op === 'insert' ? json.slice(0, i) + ch + json.slice(i) : json.slice(0, i) + ch + json.slice(i + 1);
        expect(locateJsonError(text) === undefined).toBe(parses(text));
      }),
      { numRuns: 5000 },
    );
  });
});
