// GET /debug/: one self-contained HTML page for SREs (inline CSS and JS, no
// external asset, no data in the HTML itself). The page polls /debug/pidmap,
// /debug/markers and /debug/status every 2 s and renders the node's pods →
// processes → roles → markers, with /debug/explain/{pid} one click away; see
// debug-page-script.ts. The Content-Security-Policy allows exactly this
// script and this style (by hash) and fetches to this origin, nothing else.
import { createHash } from 'node:crypto';
import { APP_JS, ESCAPE_JS } from './debug-page-script.js';
import type { HttpReply } from './http-server.js';

const CSS = `
:root { color-scheme: light; --bg: #f6f7f9; --fg: #1d2230; --muted: #6b7280; --line: #d9dde5; --card: #fff;
  --mapped: #1a7f37; --conflict: #c01c28; --pending: #9a6700; --rejected: #8250df; --stale: #57606a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; background: var(--bg); color: var(--fg); }
code, pre, .num, .pid, .time { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
header { display: flex; flex-wrap: wrap; gap: 4px 24px; align-items: baseline; padding: 10px 16px; background: #1d2230; color: #fff; }
header h1 { font-size: 16px; margin: 0; }
#summary { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: center; }
#refreshed { margin-left: auto; color: #c9d1d9; font-size: 12px; }
.banner { margin: 0; padding: 8px 16px; background: var(--conflict); color: #fff; font-weight: 600; }
body.down #groups { opacity: .55; }
main { display: flex; gap: 16px; padding: 12px 16px; align-items: flex-start; }
#groups { flex: 1 1 auto; min-width: 0; }
#explain { flex: 0 0 30%; min-width: 22em; position: sticky; top: 12px; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; max-height: calc(100vh - 24px); overflow: auto; }
#explain.open { border-color: #0969da; }
#explain form { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
#explain input { width: 9em; font: inherit; padding: 2px 4px; }
.group { background: var(--card); border: 1px solid var(--line); border-radius: 6px; margin-bottom: 12px; overflow: hidden; }
.group.has-conflict { border: 2px solid var(--conflict); }
.group h2 { font-size: 14px; margin: 0; padding: 8px 10px; background: #eef1f5; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.group.has-conflict h2 { background: #ffebe9; }
.kind { text-transform: uppercase; font-size: 11px; letter-spacing: .04em; color: var(--muted); }
.sub { margin: 4px 10px; color: var(--muted); font-size: 12px; }
.sub code { margin-right: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-top: 1px solid var(--line); vertical-align: top; }
th { font-size: 11px; color: var(--muted); font-weight: 600; white-space: nowrap; }
td.role, td.state, td.time, td.num { white-space: nowrap; }
.counts { display: inline-flex; flex-wrap: wrap; gap: 4px; }
td.reason { color: #3d4451; max-width: 38em; }
td.marker { min-width: 14em; }
td.reason { min-width: 18em; }
td.marker code, td.reason { overflow-wrap: anywhere; }
tr.st-conflict { background: #ffebe9; box-shadow: inset 4px 0 0 var(--conflict); }
tr.st-rejected { background: #fbf7ff; }
tr.st-pending { background: #fff8e1; }
tr.st-stale td { color: var(--stale); }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 11.5px; font-weight: 600; color: #fff; background: var(--stale); white-space: nowrap; }
.badge.st-mapped { background: var(--mapped); } .badge.st-conflict { background: var(--conflict); }
.badge.st-pending { background: var(--pending); } .badge.st-rejected { background: var(--rejected); }
button.pid { font: inherit; padding: 0 6px; border: 1px solid #0969da; border-radius: 4px; background: #f0f6ff; color: #0969da; cursor: pointer; }
button.pid:hover { background: #dbeafe; }
.muted, .empty { color: var(--muted); }
.verdict { font-weight: 600; padding: 6px 8px; border-radius: 4px; overflow-wrap: anywhere; }
.verdict.ok { background: #dafbe1; } .verdict.no { background: #fff8c5; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 8px 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
ul.selectors { margin: 4px 0; padding-left: 18px; }
table.related td { overflow-wrap: anywhere; }
table.related td.marker { min-width: 9em; }
table.related td.reason { min-width: 0; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; padding: 6px; border-radius: 4px; }
@media (max-width: 900px) { main { flex-direction: column; } #explain { position: static; width: 100%; } }
`;

const SCRIPT = `${ESCAPE_JS}${APP_JS}`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** Only this script and this style run; the page may fetch from its own origin; nothing else loads. */
export const DEBUG_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(CSS)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const DEBUG_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>hexr-pid-mapper · debug</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>hexr-pid-mapper</h1><div id="summary"></div><div id="refreshed">loading…</div></header>
<p id="banner" class="banner" role="alert" hidden></p>
<main>
<div id="groups"><p class="empty">loading…</p></div>
<aside id="explain">
<form id="explain-form"><label for="explain-pid">Explain host PID</label> <input id="explain-pid" inputmode="numeric" autocomplete="off"> <button type="submit">explain</button> <button type="button" id="explain-close">clear</button></form>
<div id="explain-body"><p class="muted">Click a host PID, or type one.</p></div>
</aside>
</main>
<noscript><p>This page needs JavaScript. The same data is JSON at /debug/pidmap, /debug/markers, /debug/explain/{pid} and /debug/status.</p></noscript>
<script>${SCRIPT}</script>
</body>
</html>
`;

export function debugPage(): HttpReply {
  return {
    status: 200,
    body: DEBUG_PAGE_HTML,
    type: 'text/html; charset=utf-8',
    headers: {
      'content-security-policy': DEBUG_PAGE_CSP,
      'referrer-policy': 'no-referrer',
      'cross-origin-resource-policy': 'same-origin',
      'x-frame-options': 'DENY',
    },
  };
}
