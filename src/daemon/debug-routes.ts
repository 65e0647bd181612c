// Routes of the debug endpoint (loopback by default): read-only views of the
// daemon's state for SREs (JSON, and the /debug/ page built on it), plus /live
// and /ready for probes.
import type { PidMap } from '../core/pid-map.js';
import { debugPage } from './debug-page.js';
import { rowOf, selectPidmap } from './debug-view.js';
import { json, type HttpReply, type Route } from './http-server.js';
import { jsonWithList } from './json-chunks.js';
import type { MarkerView } from './reconciler.js';

export interface DebugSource {
  snapshot(): PidMap;
  markers(): MarkerView[];
  ready(): boolean;
  /** `resetLoopDelay`: start the event-loop delay figures afresh after this reading (benchmarks). */
  status(resetLoopDelay: boolean): Record<string, unknown>;
  explain(pid: number): Record<string, unknown>;
}

export function debugRoutes(src: DebugSource): Route {
  return (method, url) => {
    if (method !== 'GET' && method !== 'HEAD') return json(405, { error: 'method not allowed' });
    const q = (k: string): string | undefined => url.searchParams.get(k) ?? undefined;
    const ex = /^\/debug\/explain\/(\d{1,10})$/.exec(url.pathname);
    if (ex) return json(200, src.explain(Number(ex[1])));
    if (url.pathname.startsWith('/debug/explain/')) return json(400, { error: 'usage: /debug/explain/{pid}' });
    switch (url.pathname) {
      case '/debug/':
        return debugPage();
      case '/debug':
        return { status: 302, body: '', type: 'text/plain', headers: { location: '/debug/' } };
      case '/live':
        return { status: 200, body: 'ok\n', type: 'text/plain' };
      case '/ready':
        return src.ready() ? { status: 200, body: 'ready\n', type: 'text/plain' } : { status: 503, body: 'not ready\n', type: 'text/plain' };
      case '/debug/pidmap': {
        const { mappings, ...head } = selectPidmap(src.snapshot(), { pod: q('pod'), role: q('role'), tenant: q('tenant'), agent: q('agent') });
        return listReply(head, 'entries', mappings, rowOf);
      }
      case '/debug/markers': {
        const state = q('state');
        const list = src.markers().filter(m => state === undefined || m.state === state);
        list.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
        return listReply({ count: list.length }, 'markers', list);
      }
      case '/debug/status':
        return json(200, src.status(q('reset_loop_delay') === '1'));
      default:
        return json(404, { error: 'not found', paths: ['/live', '/ready', '/debug/', '/debug/pidmap', '/debug/markers', '/debug/explain/{pid}', '/debug/status'] });
    }
  };
}

/** A reply carrying a long list, streamed without holding the event loop (see json-chunks.ts). */
function listReply<T>(head: Record<string, unknown>, key: string, items: readonly T[], toItem?: (item: T) => unknown): HttpReply {
  return {
    status: 200,
    body: (async function* () {
      yield* jsonWithList(head, key, items, undefined, toItem);
      yield '\n';
    })(),
  };
}
