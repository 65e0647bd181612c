// Where a JSON text stops being JSON. JSON.parse says only that it failed (and
// its message format differs between V8 versions, and quotes the input); this
// scanner, run only after JSON.parse has failed, finds the first offending
// position of the same grammar (RFC 8259 / ECMA-404) and says what was
// expected there, without echoing anything but printable ASCII of the input.
// Iterative, so deep nesting cannot overflow the stack.

export interface JsonErrorLocation {
  /** 1-based line (lines end at "\n"). */
  readonly line: number;
  /** 1-based column, in characters (code points). */
  readonly column: number;
  /** 0-based offset in UTF-8 bytes of the text. */
  readonly byte: number;
  readonly problem: string;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

function describe(text: string, i: number): string {
  if (i >= text.length) return 'end of input';
  const c = text.codePointAt(i) as number;
  return c > 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

function locate(text: string, at: number, problem: string): JsonErrorLocation {
  let line = 1;
  let column = 1;
  let byte = 0;
  for (let i = 0; i < at && i < text.length; i++) {
    const c = text.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    byte += c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
    if (pair) i++;
    if (c === 0x0a) {
      line++;
      column = 1;
    } else column++;
  }
  return { line, column, byte, problem };
}

type Step = 'value' | 'key' | 'after';

/** The first syntax error of `text`, or undefined if it is valid JSON. */
export function locateJsonError(text: string): JsonErrorLocation | undefined {
  const n = text.length;
  const stack: number[] = []; // 0x7b '{' or 0x5b '['
  let i = 0;
  let step: Step = 'value';
  const skipWs = (): void => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  const fail = (problem: string): JsonErrorLocation => locate(text, i, problem);
  const digits = (): number => {
    const s = i;
    while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    return i - s;
  };
  /** Scans a string at text[i] === '"'; returns a problem or undefined. */
  const string = (): string | undefined => {
    i++;
    for (;;) {
      if (i >= n) return 'unterminated string';
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return `control character ${describe(text, i)} in a string (must be escaped)`;
      if (c === 0x5c) {
        i++;
        const e = text[i] ?? '';
        if (e !== '' && '"\\/bfnrt'.includes(e)) i++;
        else if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) if (i >= n || !/[0-9a-fA-F]/.test(text[i] as string)) return 'bad \\u escape (4 hex digits expected)';
        } else return `bad escape: a backslash followed by ${describe(text, i)}`;
      } else i++;
    }
  };
  for (;;) {
    if (step === 'value') {
      skipWs();
      if (i >= n) return fail('unexpected end of input, a value was expected');
      const c = text.charCodeAt(i);
      if (c === 0x7b || c === 0x5b) {
        stack.push(c);
        i++;
        skipWs();
        if (text.charCodeAt(i) === (c === 0x7b ? 0x7d : 0x5d)) {
          stack.pop();
          i++;
          step = 'after';
        } else step = c === 0x7b ? 'key' : 'value';
        continue;
      }
      if (c === 0x22) {
        const p = string();
        if (p !== undefined) return fail(p);
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        if (c === 0x2d) i++;
        if (text.charCodeAt(i) === 0x30) i++;
        else if (digits() === 0) return fail(`unexpected ${describe(text, i)} in a number, a digit was expected`);
        if (text.charCodeAt(i) === 0x2e) {
          i++;
          if (digits() === 0) return fail(`unexpected ${describe(text, i)} after the decimal point, a digit was expected`);
        }
        if (text.charCodeAt(i) === 0x65 || text.charCodeAt(i) === 0x45) {
          i++;
          if (text.charCodeAt(i) === 0x2b || text.charCodeAt(i) === 0x2d) i++;
          if (digits() === 0) return fail(`unexpected ${describe(text, i)} in an exponent, a digit was expected`);
        }
      } else {
        const lit = ['true', 'false', 'null'].find(l => text.startsWith(l, i));
        if (lit === undefined) return fail(`unexpected ${describe(text, i)}, a value was expected`);
        i += lit.length;
      }
      step = 'after';
    } else if (step === 'key') {
      skipWs();
      if (text.charCodeAt(i) !== 0x22) return fail(`unexpected ${describe(text, i)}, a double-quoted property name was expected`);
      const p = string();
      if (p !== undefined) return fail(p);
      skipWs();
      if (text.charCodeAt(i) !== 0x3a) return fail(`unexpected ${describe(text, i)}, ':' was expected after the property name`);
      i++;
      step = 'value';
    } else {
      skipWs();
      const top = stack.at(-1);
      if (top === undefined) return i < n ? fail(`unexpected ${describe(text, i)} after the JSON value`) : undefined;
      const c = text.charCodeAt(i);
      const close = top === 0x7b ? 0x7d : 0x5d;
      if (c === 0x2c) {
        i++;
        step = top === 0x7b ? 'key' : 'value';
      } else if (c === close) {
        stack.pop();
        i++;
      } else return fail(`unexpected ${describe(text, i)}, ',' or '${String.fromCharCode(close)}' was expected`);
    }
  }
}
