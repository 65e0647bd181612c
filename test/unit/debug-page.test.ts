// The /debug/ page as served: self-contained (no external asset), a CSP that
// admits exactly its own script and style, the safety headers, and a
// client-side escape that agrees with src/core/escape.ts on every code point.
// The page's behaviour in a browser is tested in test/integration/debug-page.test.ts.
import { createHash } from 'node:crypto';
import * as vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PidMap } from '../../src/core/pid-map.js';
import { escapeText, safeJson } from '../../src/core/escape.js';
import { DEBUG_PAGE_CSP, DEBUG_PAGE_HTML } from '../../src/daemon/debug-page.js';
import { APP_JS, ESCAPE_JS } from '../../src/daemon/debug-page-script.js';
import { debugRoutes, type DebugSource } from '../../src/daemon/debug-routes.js';
import { HttpServer } from '../../src/daemon/http-server.js';

const clientEscapes = vm.runInNewContext(`${ESCAPE_JS}; ({ esc: esc, jsonText: jsonText })`) as {
  esc: (s: string) => string;
  jsonText: (v: unknown) => string;
};

function between(html: string, open: string, close: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const a = html.indexOf(open, i);
    if (a < 0) return out;
    const b = html.indexOf(close, a + open.length);
    out.push(html.slice(a + open.length, b));
    i = b + close.length;
  }
}

const hashOf = (s: string): string => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

describe('the debug page as served', () => {
  it('escapes exactly as escapeText does, for every code point and every lone surrogate', () => {
    const char = (cp: number): string => (cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp));
    for (let start = 0; start < 0x110000; start += 0x1000) {
      let block = '';
      for (let cp = start; cp < start + 0x1000; cp++) block += char(cp);
      if (clientEscapes.esc(block) === escapeText(block)) continue;
      // Name the first code point on which they differ (a block-sized diff is unreadable).
      for (let cp = start; cp < start + 0x1000; cp++) {
        const c = char(cp);
        expect({ cp: cp.toString(16), page: clientEscapes.esc(c) }).toEqual({ cp: cp.toString(16), page: escapeText(c) });
      }
    }
    expect(clientEscapes.esc('<img src=x onerror=alert(1)>\u001b[31m\u202eevil\\.json')).toBe('<img src=x onerror=alert(1)>\\x1b[31m\\u202eevil\\\\.json');
  });

  it('renders raw JSON the way safeJson does (bidi and C1 characters as \\uNNNN)', () => {
    const v = { path: '/k/pods/u/x\u202e\u0085\u2028"</script>.json', n: 7, list: [null, true], nested: { s: '\u001b' } };
    expect(clientEscapes.jsonText(v)).toBe(safeJson(v, 2));
    expect(clientEscapes.jsonText(v)).not.toMatch(/[\u202e\u0085\u2028]/);
  });

  it('is one HTML document with one inline style and one inline script, and references nothing outside it', () => {
    const html = DEBUG_PAGE_HTML;
    expect(between(html, '<script', '</script>')).toHaveLength(1);
    expect(between(html, '<style', '</style>')).toHaveLength(1);
    // No attribute or CSS construct that loads anything, no URL with a scheme.
    for (const bad of [/\bsrc\s*=/i, /\bhref\s*=/i, /url\s*\(/i, /@import/i, /\/\/[a-z0-9.-]+[:/]/i, /<link\b/i, /<iframe\b/i, /<img\b/i])
      expect(html, String(bad)).not.toMatch(bad);
    // The script builds the DOM from text only.
    for (const sink of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'Function(', 'setAttribute('])
      expect(`${ESCAPE_JS}${APP_JS}`, sink).not.toContain(sink);
  });

  it('has a CSP that admits exactly the inline script and style it carries, and fetches to itself only', () => {
    const [script] = between(DEBUG_PAGE_HTML, '<script>', '</script>');
    const [style] = between(DEBUG_PAGE_HTML, '<style>', '</style>');
    const csp = Object.fromEntries(DEBUG_PAGE_CSP.split(';').map(d => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v.join(' ')]));
    expect(csp).toEqual({
      'default-src': "'none'",
      'script-src': hashOf(script!),
      'style-src': hashOf(style!),
      'connect-src': "'self'",
      'img-src': "'none'",
      'base-uri': "'none'",
      'form-action': "'none'",
      'frame-ancestors': "'none'",
    });
  });
});

describe('debug routes over HTTP', () => {
  const src: DebugSource = {
    snapshot: () => PidMap.EMPTY,
    markers: () => [],
    ready: () => true,
    status: () => ({ layout: { kind: 'flat' } }),
    explain: pid => ({ pid, verdict: 'no such process' }),
  };
  const server = new HttpServer({ host: '127.0.0.1', port: 0 }, debugRoutes(src));
  let base = '';
  beforeAll(async () => {
    await server.start();
    base = `http://${server.address}`;
  });
  afterAll(() => server.close());

  it('serves the page at /debug/ with its CSP, nosniff, no-store and no framing', async () => {
    const r = await fetch(`${base}/debug/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toBe(DEBUG_PAGE_CSP);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await r.text()).toBe(DEBUG_PAGE_HTML);
  });

  it('redirects /debug to /debug/, refuses other methods, and keeps the JSON routes as they were', async () => {
    const r = await fetch(`${base}/debug`, { redirect: 'manual' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe('/debug/');
    expect((await fetch(`${base}/debug/`, { method: 'POST' })).status).toBe(405);
    const j = await fetch(`${base}/debug/pidmap`);
    expect(j.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(j.headers.get('x-content-type-options')).toBe('nosniff');
    expect(j.headers.get('content-security-policy')).toBeNull();
    expect(await j.json()).toEqual({ version: 0, count: 0, entries: [] });
    expect(await (await fetch(`${base}/debug/explain/42`)).json()).toEqual({ pid: 42, verdict: 'no such process' });
    const nf = (await (await fetch(`${base}/nope`)).json()) as { paths: string[] };
    expect(nf.paths).toContain('/debug/');
  });
});
