// Marker files are written by workloads: hostile input until proven otherwise.
// The parser is pure: it takes bytes or text, never a path. It validates the
// shape field by field and builds a fresh object; unknown fields are ignored
// and never copied.
import { locateJsonError } from './json-error.js';

/** Name-like fields become selector values and SPIFFE path segments. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const RESOURCE_RE = /^[A-Za-z0-9][A-Za-z0-9._:/*-]{0,127}$/;
export const MARKER_MAX_BYTES = 4096;
/** PID_MAX_LIMIT on 64-bit Linux (2^22). */
export const PID_MAX = 4_194_304;
const MAX_RESOURCES = 32;

export interface Marker {
  readonly agent_name: string;
  readonly tenant: string;
  readonly process_role: string;
  readonly container_pid: number;
  readonly framework?: string;
  readonly resources?: readonly string[];
  readonly pid_namespace?: number;
  readonly process_start_time?: number;
}

export type MarkerResult = { ok: true; marker: Marker } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decodes strictly (invalid UTF-8 is a rejection, not a replacement character) and parses. */
export function parseMarkerBytes(bytes: Uint8Array, maxBytes = MARKER_MAX_BYTES): MarkerResult {
  if (bytes.byteLength > maxBytes) return { ok: false, reason: `too-large: more than ${maxBytes} bytes` };
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: 'invalid-utf8' };
  }
  return parseMarker(text, maxBytes);
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/** UTF-8 length of `text`, counting no further than `limit + 1`. */
function utf8LengthUpTo(text: string, limit: number): number {
  let n = 0;
  for (let i = 0; i < text.length && n <= limit; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair is one 4-byte code point
      i++;
    } else n += 3;
  }
  return n;
}

export function parseMarker(text: string, maxBytes = MARKER_MAX_BYTES): MarkerResult {
  // The cap is in bytes, as on disk: a code unit is 1 to 3 UTF-8 bytes, so
  // only text that might fit is measured exactly.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && utf8LengthUpTo(text, maxBytes) > maxBytes)) {
    return { ok: false, reason: `too-large: more than ${maxBytes} bytes` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // The reason's first token stays "invalid-json" (metrics label on it).
    const at = locateJsonError(text);
    return { ok: false, reason: at ? `invalid-json: line ${at.line}, column ${at.column} (byte ${at.byte}): ${at.problem}` : 'invalid-json' };
  }
  if (!isPlainRecord(raw)) return { ok: false, reason: 'invalid-json: not an object' };

  const problems: string[] = [];
  const name = (key: string, required: boolean): string | undefined => {
    const v = own(raw, key);
    if (v === undefined) {
      if (required) problems.push(`missing ${key}`);
      return undefined;
    }
    if (typeof v !== 'string' || !NAME_RE.test(v)) {
      problems.push(`bad ${key}: must match ${NAME_RE.source}`);
      return undefined;
    }
    return v;
  };
  const int = (key: string, min: number, max: number, required: boolean): number | undefined => {
    const v = own(raw, key);
    if (v === undefined) {
      if (required) problems.push(`missing ${key}`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      problems.push(`bad ${key}: must be an integer in [${min}, ${max}]`);
      return undefined;
    }
    return v === 0 ? 0 : v; // JSON "-0" parses to -0: store the integer 0

  };

  const agent_name = name('agent_name', true);
  const tenant = name('tenant', true);
  const process_role = name('process_role', true);
  const container_pid = int('container_pid', 1, PID_MAX, true);
  const framework = name('framework', false);
  const pid_namespace = int('pid_namespace', 1, 0xffff_ffff, false);
  const process_start_time = int('process_start_time', 0, Number.MAX_SAFE_INTEGER, false);

  let resources: string[] | undefined;
  const rv = own(raw, 'resources');
  if (rv !== undefined) {
    if (!Array.isArray(rv) || rv.length > MAX_RESOURCES || !rv.every(r => typeof r === 'string' && RESOURCE_RE.test(r))) {
      problems.push(`bad resources: must be at most ${MAX_RESOURCES} strings matching ${RESOURCE_RE.source}`);
    } else {
      resources = rv as string[];
    }
  }

  if (problems.length > 0 || agent_name === undefined || tenant === undefined || process_role === undefined || container_pid === undefined) {
    return { ok: false, reason: `invalid-schema: ${problems.join('; ')}` };
  }
  const marker: {
    agent_name: string;
    tenant: string;
    process_role: string;
    container_pid: number;
    framework?: string;
    resources?: readonly string[];
    pid_namespace?: number;
    process_start_time?: number;
  } = { agent_name, tenant, process_role, container_pid };
  if (framework !== undefined) marker.framework = framework;
  if (resources !== undefined) marker.resources = Object.freeze([...resources]);
  if (pid_namespace !== undefined) marker.pid_namespace = pid_namespace;
  if (process_start_time !== undefined) marker.process_start_time = process_start_time;
  return { ok: true, marker: Object.freeze(marker) };
}

/** The file name the SDK (and `run-as`) uses for a marker. */
export function markerFileName(agentName: string, role: string): string {
  return `${agentName}-${role}.json`;
}
