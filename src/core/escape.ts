// Pod-controlled strings (marker file names above all: any byte but "/" and
// NUL) reach operators' terminals and browsers through pidmap, explain,
// history, the debug endpoint and the logs. A name with a newline would forge
// a table row; an ESC or C1 sequence would drive the terminal; a bidi override
// would make "resu" read as "user". So:
//  - a marker file name with any such character is rejected outright
//    (unsafeNameReason), and a name that is not UTF-8 too (decodeName);
//  - every operator-facing output escapes them anyway (defense in depth):
//    text as \n, \r, \t, \xNN or \uNNNN with the backslash doubled (so an
//    escape can never be forged by writing it literally), JSON as the \uNNNN
//    escapes JSON.stringify would otherwise leave raw.

/**
 * C0 controls, DEL, C1 controls, zero-width and bidi formatting characters,
 * line and paragraph separators, BOM, interlinear annotations and the
 * replacement character (what invalid UTF-8 decodes to).
 */
const UNSAFE_CLASS = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2069\\ufeff\\ufff9-\\ufffb\\ufffd';
const UNSAFE = new RegExp(`[${UNSAFE_CLASS}]`);
const TEXT_UNSAFE = new RegExp(`[${UNSAFE_CLASS}\\\\]`, 'g');
/** In JSON text these can only occur inside strings (JSON.stringify escapes C0 itself), where \uNNNN means the same. */
const JSON_UNSAFE = new RegExp(`[${UNSAFE_CLASS.slice('\\u0000-\\u001f'.length)}]`, 'g');

const NAMED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, '0');
}

export function hasUnsafeChars(s: string): boolean {
  return UNSAFE.test(s);
}

/** Why a marker file name is refused, or undefined when it is acceptable. */
export function unsafeNameReason(name: string): string | undefined {
  const m = UNSAFE.exec(name);
  if (!m) return undefined;
  const cp = (m[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0');
  return cp === 'FFFD' ? 'bad-name: file name is not valid UTF-8' : `bad-name: file name contains control or formatting character U+${cp}`;
}

/** One line of text, safe to print: no control character survives, no line break. */
export function escapeText(s: string): string {
  return s.replace(TEXT_UNSAFE, c => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
  });
}

/** JSON.stringify, with every character it leaves raw but a terminal would act on as \uNNNN: the same JSON value. */
export function safeJson(value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(JSON_UNSAFE, c => `\\u${hex(c.charCodeAt(0), 4)}`);
}

/** Decodes a file name read as bytes; invalid UTF-8 comes back as visible \xNN escapes and is flagged. */
export function decodeName(bytes: Buffer): { name: string; valid: boolean } {
  const name = bytes.toString('utf8');
  if (Buffer.from(name, 'utf8').equals(bytes)) return { name, valid: true };
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${hex(b, 2)}`;
  return { name: out, valid: false };
}
