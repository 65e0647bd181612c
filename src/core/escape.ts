// Rendering strings that a pod controls (marker paths, pod UIDs, reasons that
// quote them) for an operator's terminal. A marker file name can hold any byte
// but "/" and NUL: a newline would forge a table row, an ESC sequence could
// rewrite the screen, a bidi override could make "resu" read as "user".
//
// Every C0 control, DEL, C1 control, line/paragraph separator and bidi
// control is shown as a visible escape; the backslash is doubled so that an
// escape can never be confused with the same characters written literally.

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const TEXT_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;
/** In JSON text these can only occur inside strings, where a \uXXXX escape means the same. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, '0');
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

/**
 * JSON.stringify, with the characters it leaves raw (DEL, C1, bidi controls,
 * U+2028/2029) written as \uXXXX escapes: the same JSON value, safe on a terminal.
 */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_UNSAFE, c => `\\u${hex(c.charCodeAt(0), 4)}`);
}
