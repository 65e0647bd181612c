// Pod-controlled strings (marker file names above all) reach operators'
// terminals and browsers through pidmap, explain, history, the debug
// endpoint and the logs. A name with a newline would forge a table row; an
// ESC or C1 sequence would drive the terminal; a bidi override would reorder
// what is shown. So:
//  - a marker file name with any such character is rejected outright;
//  - every operator-facing output escapes them anyway (defense in depth), in
//    text as \xNN / \u{NNNN} with a literal backslash doubled (so that the
//    text "\x0a" in a name cannot pose as an escaped newline), and in JSON as
//    \uNNNN escapes JSON.stringify would otherwise leave raw.

/**
 * C0 controls, DEL, C1 controls, zero-width and bidi formatting characters,
 * line and paragraph separators, BOM, interlinear annotations and the
 * replacement character (what invalid UTF-8 decodes to).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffd]/u;
/** What JSON.stringify leaves raw (it escapes C0 itself; raw C0 in its output is structural whitespace). */
const JSON_RAW_UNSAFE_G = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffd]/gu;
const UNSAFE_OR_BACKSLASH_G = new RegExp(`\\\\|${UNSAFE.source}`, 'gu');

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

function hexEscape(ch: string): string {
  if (ch === '\\') return '\\\\';
  const cp = ch.codePointAt(0) as number;
  return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** Text safe to print on one line of a terminal. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE_OR_BACKSLASH_G, hexEscape);
}

/** JSON.stringify, with every unsafe character as a \uNNNN escape (the parsed value is unchanged). */
export function safeJson(value: unknown, space?: number): string {
  return (JSON.stringify(value, null, space) ?? 'null').replace(JSON_RAW_UNSAFE_G, ch => `\\u${(ch.codePointAt(0) as number).toString(16).padStart(4, '0')}`);
}

/** Decodes a file name read as bytes; invalid UTF-8 becomes visible \xNN escapes and is flagged. */
export function decodeName(bytes: Buffer): { name: string; valid: boolean } {
  const name = bytes.toString('utf8');
  if (Buffer.from(name, 'utf8').equals(bytes)) return { name, valid: true };
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return { name: out, valid: false };
}
