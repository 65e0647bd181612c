// A small, strict parser for the HCL v1 subset that SPIRE hands a plugin in
// ConfigureRequest.hcl_configuration (spire-plugin-protocol.md 1.2): SPIRE
// re-prints `plugin_data` with the HCL v1 printer, so we see
//   key = "v"            bare keys
//   "key" = "v"          quoted keys (agent config written in JSON)
//   key { ... }          nested blocks, also key = { ... } and key "label" { ... }
//   [1, "a", true]       lists (trailing comma allowed)
//   "raw string"         a whole document that is one string literal
//   ""                   (empty text: no options)
// plus `#`, `//` and `/* */` comments. `plugin_data_file` content is passed
// through unparsed by SPIRE, so text starting with `{` is read as JSON.
//
// Pure: takes text, returns plain objects (null prototype; `__proto__`,
// `constructor` and `prototype` keys are rejected). Throws only ParseError.
// Not supported (ParseError): heredocs, duplicate keys, null.

export type HclValue = string | number | boolean | HclValue[] | HclObject;
export interface HclObject {
  [key: string]: HclValue;
}
/** A document is a set of key/value items, or (for `plugin_data = "x"`) one string. */
export type HclDocument = HclObject | string;

export class ParseError extends Error {
  override readonly name = 'ParseError';
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${line}:${column}: ${reason}`);
  }
}

const MAX_DEPTH = 64;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isHclObject(v: HclValue | undefined): v is HclObject {
  return typeof v === 'object' && !Array.isArray(v);
}

export function parseHcl(text: string): HclDocument {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) return parseJsonDocument(text);
  return new Parser(text).document();
}

function positionOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let column = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return { line, column };
}

function newObject(): HclObject {
  return Object.create(null) as HclObject;
}

// ---------------------------------------------------------------- JSON path

function parseJsonDocument(text: string): HclObject {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // JSON.parse messages carry no reliable position; find it with our own scan.
    const msg = err instanceof Error ? err.message : String(err);
    const at = new Parser(text, true).jsonErrorAt();
    const { line, column } = positionOf(text, at?.offset ?? 0);
    throw new ParseError(`invalid JSON: ${at?.reason ?? msg}`, line, column);
  }
  const fail = (reason: string): never => {
    throw new ParseError(reason, 1, 1);
  };
  const convert = (v: unknown, path: string, depth: number): HclValue => {
    if (depth > MAX_DEPTH) return fail(`nesting deeper than ${MAX_DEPTH}`);
    if (typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') return v;
    if (v === null) return fail(`${path || 'value'}: null is not supported`);
    if (Array.isArray(v)) return v.map((x, i) => convert(x, `${path}[${i}]`, depth + 1));
    const out = newObject();
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const p = path ? `${path}.${k}` : k;
      if (FORBIDDEN_KEYS.has(k)) fail(`key "${p}" is not allowed`);
      out[k] = convert(x, p, depth + 1);
    }
    return out;
  };
  const doc = convert(raw, '', 0);
  if (!isHclObject(doc)) return fail('a JSON document must be an object');
  return doc;
}

// ---------------------------------------------------------------- HCL path

class JsonScanError extends Error {
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(reason);
  }
}

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly src: string,
    /** JSON mode: only used to locate a syntax error JSON.parse reported. */
    private readonly json = false,
  ) {}

  /** In JSON mode: where and why the text is not JSON, or undefined if it scans fine. */
  jsonErrorAt(): { offset: number; reason: string } | undefined {
    try {
      this.skipSpace();
      if (this.peek() !== '{') this.fail('expected "{"');
      this.pos++;
      this.nested(() => this.items('}'));
      this.skipSpace();
      if (!this.eof()) this.fail(`unexpected ${describe(this.src[this.pos] ?? '')} after the document`);
      return undefined;
    } catch (err) {
      if (err instanceof JsonScanError) return { offset: err.offset, reason: err.reason };
      throw err;
    }
  }

  document(): HclDocument {
    this.skipSpace();
    if (this.eof()) return newObject();
    if (this.peek() === '"') {
      // A lone string literal is a whole document; a quoted key starts items.
      const save = this.pos;
      const str = this.string();
      this.skipSpace();
      if (this.eof()) return str;
      this.pos = save;
    }
    const obj = this.items(undefined);
    return obj;
  }

  // items until `close` (or EOF at top level)
  private items(close: '}' | undefined): HclObject {
    const obj = newObject();
    for (;;) {
      this.skipSpace();
      if (this.eof()) {
        if (close !== undefined) this.fail(`expected "${close}" before end of input`);
        return obj;
      }
      if (close !== undefined && this.peek() === close) {
        this.pos++;
        return obj;
      }
      this.item(obj);
      this.skipSpace();
      if (this.peek() === ',') this.pos++;
    }
  }

  private item(into: HclObject): void {
    const keyAt = this.pos;
    const key = this.key();
    this.skipSpace();
    const c = this.peek();
    let value: HclValue;
    if (this.json) {
      if (c !== ':') this.fail(`expected ":" after key "${key}"`);
      this.pos++;
      this.skipSpace();
      value = this.value();
    } else if (c === '=') {
      this.pos++;
      this.skipSpace();
      value = this.value();
    } else if (c === '{' || c === '"' || isIdentStart(c)) {
      value = this.block();
    } else {
      this.fail(c === undefined ? `expected "=" or "{" after key "${key}", got end of input` : `expected "=" or "{" after key "${key}", got ${describe(c)}`);
    }
    this.assign(into, key, value, keyAt);
  }

  // key "label" "label2" { ... }  → { label: { label2: {...} } }
  private block(): HclObject {
    this.skipSpace();
    const c = this.peek();
    if (c === '{') {
      this.pos++;
      return this.nested(() => this.items('}'));
    }
    if (c !== '"' && !isIdentStart(c)) {
      this.fail(c === undefined ? 'expected "{" or a block label, got end of input' : `expected "{" or a block label, got ${describe(c)}`);
    }
    const labelAt = this.pos;
    const label = this.key();
    const inner = this.block();
    const obj = newObject();
    this.assign(obj, label, inner, labelAt);
    return obj;
  }

  private assign(into: HclObject, key: string, value: HclValue, at: number): void {
    if (FORBIDDEN_KEYS.has(key)) this.fail(`key "${key}" is not allowed`, at);
    if (Object.prototype.hasOwnProperty.call(into, key)) this.fail(`duplicate key "${key}"`, at);
    into[key] = value;
  }

  private key(): string {
    const c = this.peek();
    if (c === '"') return this.string();
    if (isIdentStart(c) && !this.json) {
      const start = this.pos;
      while (isIdentPart(this.peek())) this.pos++;
      return this.src.slice(start, this.pos);
    }
    return this.fail(c === undefined ? 'expected a key, got end of input' : `expected a key, got ${describe(c)}`);
  }

  private value(): HclValue {
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === '[') {
      this.pos++;
      return this.nested(() => this.list());
    }
    if (c === '{') {
      this.pos++;
      return this.nested(() => this.items('}'));
    }
    if (c === '-' || isDigit(c)) return this.number();
    if (c === '<' && this.src.startsWith('<<', this.pos)) this.fail('heredoc strings are not supported');
    if (isIdentStart(c)) {
      const start = this.pos;
      while (isIdentPart(this.peek())) this.pos++;
      const word = this.src.slice(start, this.pos);
      if (word === 'true') return true;
      if (word === 'false') return false;
      if (word === 'null' && this.json) this.fail('null is not supported', start);
      this.fail(`unexpected word "${word}" (strings must be quoted)`, start);
    }
    return this.fail(c === undefined ? 'expected a value, got end of input' : `expected a value, got ${describe(c)}`);
  }

  private nested<T>(fn: () => T): T {
    if (++this.depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const v = fn();
    this.depth--;
    return v;
  }

  private list(): HclValue[] {
    const out: HclValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.peek() === ']') {
        this.pos++;
        return out;
      }
      if (this.eof()) this.fail('expected "]" before end of input');
      out.push(this.value());
      this.skipSpace();
      const c = this.peek();
      if (c === ',') this.pos++;
      else if (c !== ']') this.fail(c === undefined ? 'expected "," or "]", got end of input' : `expected "," or "]", got ${describe(c)}`);
    }
  }

  private number(): number {
    const start = this.pos;
    const rest = this.src.slice(start);
    const m = /^-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(rest);
    if (!m) return this.fail('invalid number');
    const lit = m[0];
    this.pos += lit.length;
    if (isIdentPart(this.peek())) this.fail('invalid number', start);
    const neg = lit.startsWith('-');
    const body = neg ? lit.slice(1) : lit;
    let n: number;
    if (/^0[xX]/.test(body)) n = parseInt(body.slice(2), 16);
    else if (/^0[0-7]+$/.test(body)) n = parseInt(body.slice(1), 8); // HCL v1 reads 0755 as octal
    else if (/^0\d+$/.test(body)) return this.fail(`invalid octal number "${lit}"`, start);
    else n = Number(body);
    if (neg) n = -n;
    const isInt = /^(?:0[xX][0-9a-fA-F]+|\d+)$/.test(body);
    if (!Number.isFinite(n) || (isInt && !Number.isSafeInteger(n))) this.fail(`number "${lit}" is out of range`, start);
    return n;
  }

  private string(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('unterminated string', start);
      if (c === '\n') this.fail('newline in string', start);
      this.pos++;
      if (c === '"') return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const escAt = this.pos - 1;
      const e = this.peek();
      this.pos++;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '"': out += '"'; break;
        case '/': if (!this.json) this.fail('invalid escape "\\/"', escAt); out += '/'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'x': out += this.hexEscape(2, escAt); break;
        case 'u': out += this.hexEscape(4, escAt); break;
        case 'U': out += this.hexEscape(8, escAt); break;
        default:
          if (e !== undefined && e >= '0' && e <= '7') {
            const oct = this.src.slice(this.pos - 1, this.pos + 2);
            if (!/^[0-7]{3}$/.test(oct)) this.fail('invalid octal escape', escAt);
            const code = parseInt(oct, 8);
            if (code > 255) this.fail('invalid octal escape', escAt);
            out += String.fromCharCode(code);
            this.pos += 2;
            break;
          }
          this.fail(e === undefined ? 'unterminated string' : `invalid escape "\\${e}"`, escAt);
      }
    }
  }

  private hexEscape(len: number, at: number): string {
    const hex = this.src.slice(this.pos, this.pos + len);
    if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex)) this.fail('invalid hex escape', at);
    const code = parseInt(hex, 16);
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) this.fail('invalid unicode escape', at);
    this.pos += len;
    return String.fromCodePoint(code);
  }

  private skipSpace(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
        this.pos++;
      } else if (c === '#' || (c === '/' && this.src[this.pos + 1] === '/')) {
        while (!this.eof() && this.peek() !== '\n') this.pos++;
      } else if (c === '/' && this.src[this.pos + 1] === '*') {
        const end = this.src.indexOf('*/', this.pos + 2);
        if (end < 0) this.fail('unterminated /* comment');
        this.pos = end + 2;
      } else {
        return;
      }
    }
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private eof(): boolean {
    return this.pos >= this.src.length;
  }

  private fail(reason: string, at: number = this.pos): never {
    if (this.json) throw new JsonScanError(reason, at);
    const { line, column } = positionOf(this.src, at);
    throw new ParseError(reason, line, column);
  }
}

function isIdentStart(c: string | undefined): c is string {
  return c !== undefined && /^[A-Za-z_]$/.test(c);
}

function isIdentPart(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z0-9_.-]$/.test(c);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function describe(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  return code < 0x20 || code === 0x7f ? `character U+${code.toString(16).padStart(4, '0').toUpperCase()}` : `"${c}"`;
}
