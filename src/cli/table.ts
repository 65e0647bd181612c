// Plain-text tables for the SRE commands. Every cell is escaped (core/escape):
// marker paths and pod UIDs come from pods, and a newline or an escape
// sequence in a file name must never forge a row or rewrite the screen.
import { escapeText } from '../core/escape.js';

export type Cell = string | number | null | undefined;

/** Columns padded to the widest cell; "-" for an empty cell; no trailing spaces. */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const cells = rows.map(r => headers.map((_, i) => (r[i] === null || r[i] === undefined || r[i] === '' ? '-' : escapeText(String(r[i])))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map(c => (c[i] as string).length)));
  const line = (vals: readonly string[]): string => vals.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}
