// Waiting for the daemon, for `wait` and `run-as`: poll its debug endpoint
// until a condition holds or time runs out, and explain what is missing.
import * as path from 'node:path';
import type { PidmapRow } from '../daemon/debug-view.js';
import { getJson, isReady, within } from './debug-client.js';

const POLL_MS = 100;

export interface MarkerInfo {
  readonly path: string;
  readonly state: string;
  readonly reason: string;
}

/** Where the daemon stands: unreachable, starting (not ready), or ready with a map. */
export type DaemonView = { kind: 'unreachable' } | { kind: 'starting' } | { kind: 'ready'; entries: PidmapRow[] };

export async function viewDaemon(addr: string, query = '', signal?: AbortSignal): Promise<DaemonView> {
  try {
    if (!(await isReady(addr, 1000, signal))) {
      // /ready answers 503 while the first scan runs; nothing at all when no daemon listens.
      const live = await fetch(`http://${addr}/live`, { signal: within(1000, signal) }).then(
        r => (void r.body?.cancel(), r.ok),
        () => false,
      );
      return live ? { kind: 'starting' } : { kind: 'unreachable' };
    }
    const body = await getJson<{ entries: PidmapRow[] }>(addr, `/debug/pidmap${query}`, 2000, signal);
    return { kind: 'ready', entries: body.entries };
  } catch {
    return { kind: 'unreachable' };
  }
}

/** Polls `view` until `done` holds, `timeoutMs` passes or `signal` aborts; returns the last view. */
export async function pollDaemon(
  addr: string,
  query: string,
  done: (v: DaemonView) => boolean,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ view: DaemonView; met: boolean }> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const view = await viewDaemon(addr, query, signal);
    if (done(view)) return { view, met: true };
    if (Date.now() >= end || signal?.aborted) return { view, met: false };
    await new Promise(r => setTimeout(r, Math.min(POLL_MS, Math.max(0, end - Date.now()))));
  }
}

/** The daemon's markers (path, state, reason), or [] if it cannot be read. */
export async function markersOf(addr: string): Promise<MarkerInfo[]> {
  try {
    const body = await getJson<{ markers: Record<string, unknown>[] }>(addr, '/debug/markers', 2000);
    return body.markers.flatMap(m => {
      const p = m['path'] ?? m['marker_path'];
      return typeof p === 'string' ? [{ path: p, state: String(m['state']), reason: String(m['reason']) }] : [];
    });
  } catch {
    return [];
  }
}

/** The daemon's record of the marker file named `name` (flat layout: one context root). */
export function markerNamed(markers: readonly MarkerInfo[], name: string): MarkerInfo | undefined {
  return markers.find(m => path.basename(m.path) === name);
}
