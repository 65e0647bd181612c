import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeText, safeJson } from '../../src/core/escape.js';

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('escapeText', () => {
  it('leaves ordinary text alone', () => {
    expect(escapeText('/tmp/hexr-context/content-crew-writer.json')).toBe('/tmp/hexr-context/content-crew-writer.json');
    expect(escapeText('café 東京')).toBe('café 東京');
  });

  it('shows line breaks, ESC, DEL, C1 and bidi controls as visible escapes', () => {
    expect(escapeText('a\nb\rc\td')).toBe('a\\nb\\rc\\td');
    expect(escapeText('\u001b[31mred\u001b[0m')).toBe('\\x1b[31mred\\x1b[0m');
    expect(escapeText('\u0000\u007f\u0085\u009b')).toBe('\\x00\\x7f\\x85\\x9b');
    expect(escapeText('evil\u202egnp.json')).toBe('evil\\u202egnp.json');
    expect(escapeText('\u2066x\u2069\u2028\u200f')).toBe('\\u2066x\\u2069\\u2028\\u200f');
  });

  it('doubles backslashes, so an escape cannot be forged by writing it literally', () => {
    expect(escapeText('a\\nb')).toBe('a\\\\nb');
    expect(escapeText('a\\nb')).not.toBe(escapeText('a\nb'));
  });

  it('never lets an unsafe character through, and is injective', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(escapeText(a)).not.toMatch(UNSAFE);
        if (a !== b) expect(escapeText(a)).not.toBe(escapeText(b));
      }),
    );
  });
});

describe('safeJson', () => {
  it('is the same JSON value, with no raw unsafe character in the text', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: 'binary' }), (v, s) => {
        const value = { v, s };
        const text = safeJson(value); // no indentation: no structural newline either
        expect(text).not.toMatch(UNSAFE);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });
});
