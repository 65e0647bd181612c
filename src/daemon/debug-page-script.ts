// The debug page's JavaScript, served inline by debug-page.ts (no external
// asset). Plain ES2020 for the browser, kept as text: nothing here runs in the
// daemon. Every string from the daemon's JSON is pod-controlled or may quote
// pod-controlled text, so it only ever reaches the page through textContent
// (never innerHTML), after esc(): the same visible escapes as escapeText in
// src/core/escape.ts (a unit test checks both agree on every code point).

/** Defines esc(s) and jsonText(v); evaluated on its own by the unit test. */
export const ESCAPE_JS = String.raw`
var UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffd\\]/g;
var UNSAFE_JSON = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffd]/g;
var NAMED = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
function hexOf(c, w) { return c.charCodeAt(0).toString(16).padStart(w, '0'); }
function esc(s) {
  return String(s).replace(UNSAFE_TEXT, function (c) {
    if (Object.prototype.hasOwnProperty.call(NAMED, c)) return NAMED[c];
    return c.charCodeAt(0) < 0x100 ? '\\x' + hexOf(c, 2) : '\\u' + hexOf(c, 4);
  });
}
function jsonText(v) {
  return (JSON.stringify(v, null, 2) || 'null').replace(UNSAFE_JSON, function (c) { return '\\u' + hexOf(c, 4); });
}
`;

/** The page itself: polls the JSON endpoints, renders pods → processes → roles → markers, and explain. */
export const APP_JS = String.raw`
(function () {
  'use strict';
  var POLL_MS = 2000;
  var ORDER = { mapped: 0, conflict: 1, pending: 2, rejected: 3, stale: 4 };
  var STATES = ['mapped', 'conflict', 'pending', 'rejected', 'stale'];
  var lastOk = 0, failingSince = 0, refreshes = 0, sig = '', explainPid = null, explainSig = '';

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = esc(text);
    return e;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function clock(ms) { return new Date(ms).toTimeString().slice(0, 8); }
  function baseName(p) { var i = p.lastIndexOf('/'); return i >= 0 ? p.slice(i + 1) : p; }
  function when(iso) { return iso ? clock(Date.parse(iso)) : '-'; }
  function getJson(path) {
    return fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(5000) }).then(function (r) {
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return r.json();
    });
  }

  // Markers and mappings grouped by pod (flat layout: one group per context dir).
  function groupsOf(pidmap, markers) {
    var groups = new Map();
    function group(key) {
      var g = groups.get(key);
      if (!g) { g = { key: key, rows: [], counts: {}, containers: new Set() }; groups.set(key, g); }
      return g;
    }
    var byPath = new Map();
    pidmap.entries.forEach(function (e) { byPath.set(e.marker_path, e); });
    var used = new Set();
    markers.markers.forEach(function (m) {
      var e = m.state === 'mapped' ? byPath.get(m.path) : undefined;
      if (e) used.add(e);
      var g = group(m.scope || (m.pod_uid ? 'pod:' + m.pod_uid : ''));
      var mk = m.marker || (e ? { tenant: e.tenant, agent_name: e.agent_name, process_role: e.process_role, container_pid: e.container_pid } : null);
      g.rows.push({ state: m.state, reason: m.reason, path: m.path, hostPid: e ? e.host_pid : m.host_pid, marker: mk, entry: e, at: e ? e.mapped_at : m.changed_at });
    });
    pidmap.entries.forEach(function (e) {
      if (used.has(e)) return;
      var g = group(e.pod_uid ? 'pod:' + e.pod_uid : 'map');
      g.rows.push({ state: 'mapped', reason: 'in the map; its marker is not listed', path: e.marker_path, hostPid: e.host_pid, marker: e, entry: e, at: e.mapped_at });
    });
    groups.forEach(function (g) {
      g.rows.forEach(function (r) {
        g.counts[r.state] = (g.counts[r.state] || 0) + 1;
        if (r.entry && r.entry.container_id) g.containers.add(r.entry.container_id);
      });
      g.rows.sort(function (a, b) {
        return ORDER[a.state] - ORDER[b.state] || (a.hostPid || 0) - (b.hostPid || 0) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
      });
    });
    return Array.from(groups.values()).sort(function (a, b) {
      return (a.key === '') - (b.key === '') || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    });
  }

  function badges(parent, counts) {
    STATES.forEach(function (s) {
      if (counts[s]) add(parent, el('span', 'badge st-' + s, counts[s] + ' ' + s));
    });
  }

  function groupTitle(h, key) {
    if (key.indexOf('pod:') === 0) { add(h, el('span', 'kind', 'pod')); add(h, el('code', 'uid', key.slice(4))); }
    else if (key.indexOf('flat:') === 0) { add(h, el('span', 'kind', 'flat layout')); add(h, el('code', 'uid', key.slice(5))); }
    else if (key === 'map') add(h, el('span', 'kind', 'mapped, marker not listed'));
    else add(h, el('span', 'kind', 'context directories outside any pod'));
  }

  function row(tbody, r) {
    var tr = add(tbody, el('tr', 'row st-' + r.state));
    tr.dataset.state = r.state;
    var pidCell = add(tr, el('td', 'pid'));
    if (typeof r.hostPid === 'number') {
      var b = add(pidCell, el('button', 'pid', r.hostPid));
      b.type = 'button';
      b.dataset.pid = String(r.hostPid);
      b.title = 'explain host PID ' + r.hostPid;
    } else pidCell.textContent = '-';
    add(tr, el('td', 'num', r.marker && typeof r.marker.container_pid === 'number' ? r.marker.container_pid : '-'));
    var role = add(tr, el('td', 'role'));
    if (r.marker) {
      add(role, el('span', 'muted', r.marker.tenant + ' / ' + r.marker.agent_name + ' / '));
      add(role, el('strong', 'role-name', r.marker.process_role));
    } else role.textContent = '-';
    add(add(tr, el('td', 'state')), el('span', 'badge st-' + r.state, r.state));
    var name = add(add(tr, el('td', 'marker')), el('code', 'path', baseName(r.path)));
    name.title = esc(r.path);
    add(tr, el('td', 'reason', r.reason));
    add(tr, el('td', 'time', when(r.at)));
  }

  function renderGroups(groups) {
    var root = $('groups');
    root.replaceChildren();
    if (groups.length === 0) add(root, el('p', 'empty', 'No markers and no mapped processes on this node yet.'));
    groups.forEach(function (g) {
      var sec = add(root, el('section', 'group' + (g.counts.conflict ? ' has-conflict' : '')));
      sec.dataset.group = g.key;
      var h = add(sec, el('h2'));
      groupTitle(h, g.key);
      badges(add(h, el('span', 'counts')), g.counts);
      if (g.containers.size) {
        var c = add(sec, el('p', 'sub', 'containers: '));
        g.containers.forEach(function (id) { var x = add(c, el('code', 'cid', id.slice(0, 13))); x.title = esc(id); });
      }
      var t = add(sec, el('table'));
      var hr = add(add(t, el('thead')), el('tr'));
      ['host PID', 'container PID', 'tenant / agent / role', 'state', 'marker', 'reason', 'since'].forEach(function (x) { add(hr, el('th', null, x)); });
      var tb = add(t, el('tbody'));
      g.rows.forEach(function (r) { row(tb, r); });
    });
  }

  function renderSummary(status, markers) {
    var s = $('summary');
    s.replaceChildren();
    var counts = {};
    markers.markers.forEach(function (m) { counts[m.state] = (counts[m.state] || 0) + 1; });
    var layout = status.layout && status.layout.kind ? status.layout.kind : '?';
    add(s, el('span', null, (status.node_name ? 'node ' + status.node_name + ' · ' : '') + layout + ' layout · ' + status.watch_root));
    add(s, el('span', null, 'map version ' + status.map_version + ' · ' + status.mapped + ' mapped · ' + status.processes + ' processes seen'));
    badges(add(s, el('span', 'counts')), counts);
  }

  function tick() {
    var r = $('refreshed');
    if (lastOk) r.textContent = 'refreshed ' + clock(lastOk) + ' (' + Math.round((Date.now() - lastOk) / 1000) + ' s ago), every ' + POLL_MS / 1000 + ' s';
    var bn = $('banner');
    bn.hidden = !failingSince;
    document.body.classList.toggle('down', !!failingSince);
  }

  function refresh() {
    Promise.all([getJson('/debug/pidmap'), getJson('/debug/markers'), getJson('/debug/status')]).then(function (d) {
      var s = JSON.stringify([d[0].entries, d[1].markers]);
      if (s !== sig) { sig = s; renderGroups(groupsOf(d[0], d[1])); }
      renderSummary(d[2], d[1]);
      lastOk = Date.now(); failingSince = 0;
      refreshes++;
      document.documentElement.dataset.refreshes = String(refreshes);
      if (explainPid !== null) explain(explainPid, false);
    }, function (err) {
      if (!failingSince) failingSince = Date.now();
      $('banner').textContent = esc('The daemon is not answering since ' + clock(failingSince) + ' (' + (err && err.message ? err.message : err) + '). ' +
        (lastOk ? 'Showing the data of ' + clock(lastOk) + '.' : 'No data yet.'));
    }).finally(function () { tick(); setTimeout(refresh, POLL_MS); });
  }

  function kv(dl, k, v) { add(dl, el('dt', null, k)); add(dl, el('dd', null, v === null || v === undefined || v === '' ? '-' : v)); }

  function renderExplain(pid, x) {
    var body = $('explain-body');
    body.replaceChildren();
    add(body, el('h3', null, 'host PID ' + pid));
    add(body, el('p', 'verdict ' + (x.mapped ? 'ok' : 'no'), x.verdict));
    var dl = add(body, el('dl'));
    kv(dl, 'exists', String(x.exists));
    kv(dl, 'start time', x.start_time);
    kv(dl, 'NSpid', Array.isArray(x.nspid) ? x.nspid.join(' ') : null);
    kv(dl, 'container PID', x.container_pid);
    kv(dl, 'PID namespace', x.pid_namespace);
    kv(dl, 'pod', x.pod_uid);
    kv(dl, 'container', x.container_id);
    kv(dl, 'map version', x.map_version);
    if (x.mapped) kv(dl, 'marker', x.mapped.marker_path);
    add(body, el('h4', null, 'selectors'));
    var ul = add(body, el('ul', 'selectors'));
    (x.selectors || []).forEach(function (s) { add(add(ul, el('li')), el('code', null, s)); });
    if (!ul.firstChild) add(ul, el('li', 'muted', '(none)'));
    var related = x.markers_naming_its_container_pid || [];
    if (related.length) {
      add(body, el('h4', null, 'markers naming its container PID'));
      var t = add(body, el('table', 'related'));
      var hr = add(add(t, el('thead')), el('tr'));
      ['marker', 'state', 'reason', 'for this PID'].forEach(function (h) { add(hr, el('th', null, h)); });
      var tb = add(t, el('tbody'));
      related.forEach(function (m) {
        var tr = add(tb, el('tr', 'row st-' + m.state));
        var name = add(add(tr, el('td', 'marker')), el('code', 'path', baseName(m.marker_path)));
        name.title = esc(m.marker_path);
        add(add(tr, el('td')), el('span', 'badge st-' + m.state, m.state));
        add(tr, el('td', 'reason', m.reason));
        add(tr, el('td', null, m.this_pid));
      });
    }
    var d = add(body, el('details'));
    add(d, el('summary', null, 'raw JSON (/debug/explain/' + pid + ')'));
    add(d, el('pre')).textContent = jsonText(x);
  }

  function explain(pid, fresh) {
    explainPid = pid;
    if (fresh) { explainSig = ''; $('explain-body').replaceChildren(el('p', 'muted', 'asking the daemon about host PID ' + pid + '…')); }
    getJson('/debug/explain/' + pid).then(function (x) {
      if (explainPid !== pid) return;
      var s = JSON.stringify(x);
      if (s !== explainSig) { explainSig = s; renderExplain(pid, x); }
    }, function (err) {
      if (explainPid === pid && fresh) $('explain-body').replaceChildren(el('p', 'verdict no', 'explain failed: ' + (err && err.message ? err.message : err)));
    });
  }

  function explainFromUser(text) {
    if (!/^\d{1,10}$/.test(text)) { $('explain-body').replaceChildren(el('p', 'verdict no', 'a host PID is a number')); return; }
    var pid = Number(text);
    $('explain-pid').value = String(pid);
    history.replaceState(null, '', '#explain=' + pid);
    $('explain').classList.add('open');
    explain(pid, true);
  }

  document.addEventListener('click', function (ev) {
    var b = ev.target instanceof Element ? ev.target.closest('button.pid') : null;
    if (b && b.dataset.pid) explainFromUser(b.dataset.pid);
  });
  $('explain-form').addEventListener('submit', function (ev) { ev.preventDefault(); explainFromUser($('explain-pid').value.trim()); });
  $('explain-close').addEventListener('click', function () {
    explainPid = null; $('explain').classList.remove('open');
    $('explain-body').replaceChildren(el('p', 'muted', 'Click a host PID, or type one.'));
    history.replaceState(null, '', '#');
  });
  var m = /^#explain=(\d{1,10})$/.exec(location.hash);
  if (m) explainFromUser(m[1]);
  setInterval(tick, 1000);
  refresh();
})();
`;
