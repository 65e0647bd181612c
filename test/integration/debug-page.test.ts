// The /debug/ page in a real headless Chromium (Debian's), against the real
// daemon watching real pods (kubelet layout): what an SRE sees, what a click
// on a host PID explains, that it follows the node without a reload, that a
// hostile marker name is shown as escaped text and runs nothing, and that the
// page asks nothing of anyone but the daemon on loopback.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeText } from '../../src/core/escape.js';
import { CHROMIUM_SKIP, HeadlessChromium } from '../helpers/browser.js';
import { DaemonProcess } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { TestPod, type PodProcess } from '../helpers/pod.js';

const NEEDS = ROOT_SKIP ?? CHROMIUM_SKIP;
// On a developer machine without chromium (or root) the file skips, saying why; under CI it must run.
const skip = process.env['CI'] ? false : skipNote('integration (debug page in Chromium)', NEEDS);

/** Rejected by the daemon for its ESC (bad-name), and full of HTML. */
const EVIL = '<img src=x onerror=window.__pwned=1>\u001b[31m\u202eevil.json';
/** A valid name that is HTML; broken JSON inside (rejected: invalid-json). */
const SVG = '"><svg onload=window.__pwned=2>.json';

interface ShownRow {
  group: string;
  state: string;
  cls: string;
  pid: string;
  cpid: string;
  role: string;
  marker: string;
  title: string;
  reason: string;
}

/** The rows the page shows, read from the DOM as text. */
function shown(page: Page): Promise<ShownRow[]> {
  return page.evaluate(() => {
    const doc = (globalThis as any).document;
    return Array.from(doc.querySelectorAll('#groups section.group tr.row') as ArrayLike<any>).map((tr: any) => {
      const td = tr.querySelectorAll('td');
      return {
        group: tr.closest('section').dataset.group,
        state: tr.dataset.state,
        cls: tr.className,
        pid: td[0].textContent,
        cpid: td[1].textContent,
        role: td[2].textContent,
        marker: td[4].textContent,
        title: td[4].querySelector('code').title,
        reason: td[5].textContent,
      };
    });
  });
}

async function rowWhere(page: Page, pred: (r: ShownRow) => boolean, what: string, ms = 15_000): Promise<ShownRow> {
  return eventually(async () => (await shown(page)).find(pred), ms, what);
}

describe.skipIf(skip)('the debug page in headless Chromium, on a real daemon with real pods', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  let browser: HeadlessChromium | undefined;
  let ctx: BrowserContext;
  let page: Page;
  const pods: TestPod[] = [];
  const pageErrors: string[] = [];
  const roles = new Map<string, PodProcess>();
  let rival: PodProcess;

  beforeAll(async () => {
    if (NEEDS) throw new Error(`CI=true, but this machine cannot run the browser test: ${NEEDS}`);
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-page-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--resync-interval', '2s', '--pending-retry', '200ms'] });
    await daemon.start();
    const [a, b] = [await TestPod.create(kubelet, 'v2-systemd-containerd'), await TestPod.create(kubelet, 'v2-systemd-crio')];
    pods.push(a, b);
    roles.set('a/researcher', await a.startRole('researcher'));
    roles.set('a/writer', await a.startRole('writer'));
    roles.set('b/researcher', await b.startRole('researcher'));
    roles.set('b/editor', await b.startRole('editor'));
    await eventually(async () => (await daemon.pidmap()).length === 4, 15_000, 'four roles mapped');
    rival = await b.startRole('editor', { file: 'rival-editor.json' }); // exclusive roles: a conflict
    fs.writeFileSync(a.hostPath(EVIL), JSON.stringify({ agent_name: 'x', tenant: 'x', process_role: 'x', container_pid: 1 }));
    fs.writeFileSync(a.hostPath(SVG), '{"agent_name": oops');
    for (const [file, state] of [[b.hostPath('rival-editor.json'), 'conflict'], [a.hostPath(EVIL), 'rejected'], [a.hostPath(SVG), 'rejected']] as const)
      await eventually(async () => (await daemon.marker(file))?.state === state, 10_000, `${escapeText(path.basename(file))} ${state}`);

    browser = await HeadlessChromium.launch();
    ctx = await browser.context();
    page = await ctx.newPage();
    page.on('pageerror', e => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', m => {
      if (m.type() === 'error' || m.type() === 'warning') pageErrors.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('dialog', d => {
      pageErrors.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
  });

  afterAll(async () => {
    const steps: (() => Promise<unknown>)[] = [() => browser?.close() ?? Promise.resolve(), () => daemon?.cleanup() ?? Promise.resolve()];
    for (const p of pods) steps.push(() => p.destroy());
    for (const s of steps) await s().catch((err: unknown) => console.error('cleanup:', err));
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  it('serves /debug/ as one self-contained page with a strict CSP, and /debug redirects to it', async () => {
    const res = await page.goto(`http://${daemon.debugAddr}/debug`);
    expect(page.url()).toBe(`http://${daemon.debugAddr}/debug/`);
    const h = res!.headers();
    expect(h['content-type']).toBe('text/html; charset=utf-8');
    expect(h['x-content-type-options']).toBe('nosniff');
    expect(h['cache-control']).toBe('no-store');
    expect(h['content-security-policy']).toMatch(/^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self';/);
    // The script ran under that CSP: the page rendered data from the daemon.
    await eventually(() => page.evaluate(() => Number((globalThis as any).document.documentElement.dataset.refreshes ?? 0) > 0), 10_000, 'first refresh');
  });

  it('shows each pod with its processes, their roles and markers, mapped or not', async () => {
    const [a, b] = pods as [TestPod, TestPod];
    await rowWhere(page, r => r.marker === 'rival-editor.json', 'all markers shown');
    const rows = await shown(page);
    for (const [key, proc] of roles) {
      const [podKey, role] = key.split('/') as [string, string];
      const pod = podKey === 'a' ? a : b;
      const row = rows.find(r => r.pid === String(proc.hostPid));
      expect(row, key).toMatchObject({ group: `pod:${pod.uid}`, state: 'mapped', cpid: String(proc.cpid), role: `acme / content-crew / ${role}`, marker: `content-crew-${role}.json` });
      expect(row!.title).toBe(pod.hostPath(`content-crew-${role}.json`));
    }
    expect(new Set(rows.map(r => r.group))).toEqual(new Set([`pod:${a.uid}`, `pod:${b.uid}`]));
    expect(rows.filter(r => r.group === `pod:${a.uid}`).map(r => r.state)).toEqual(['mapped', 'mapped', 'rejected', 'rejected']);
    expect(rows.filter(r => r.group === `pod:${b.uid}`).map(r => r.state)).toEqual(['mapped', 'mapped', 'conflict']);
    // Each pod's header: its containers and its counts by state.
    const heads = await page.evaluate(() =>
      Array.from((globalThis as any).document.querySelectorAll('section.group') as ArrayLike<any>).map((s: any) => ({ key: s.dataset.group, text: s.querySelector('h2').textContent, sub: s.querySelector('.sub')?.textContent })),
    );
    expect(heads.find(h => h.key === `pod:${a.uid}`)?.text).toBe(`pod${a.uid}2 mapped2 rejected`);
    expect(heads.find(h => h.key === `pod:${b.uid}`)?.text).toBe(`pod${b.uid}2 mapped1 conflict`);
    expect(heads.find(h => h.key === `pod:${a.uid}`)?.sub).toBe(`containers: ${a.containerId.slice(0, 13)}`);
  });

  it('highlights the conflict: the row and its pod, and says why', async () => {
    const b = pods[1]!;
    const row = await rowWhere(page, r => r.marker === 'rival-editor.json', 'rival row');
    expect(row).toMatchObject({ group: `pod:${b.uid}`, state: 'conflict', pid: '-', cpid: String(rival.cpid), role: 'acme / content-crew / editor' });
    expect(row.reason).toBe((await daemon.marker(b.hostPath('rival-editor.json')))!.reason);
    expect(row.reason).toMatch(/editor/);
    const look = await page.evaluate(uid => {
      const doc = (globalThis as any).document;
      const css = (sel: string, prop: string): string => (globalThis as any).getComputedStyle(doc.querySelector(sel))[prop];
      return {
        conflictBg: css(`section[data-group="pod:${uid}"] tr.st-conflict`, 'backgroundColor'),
        mappedBg: css(`section[data-group="pod:${uid}"] tr.st-mapped`, 'backgroundColor'),
        podBorder: css(`section[data-group="pod:${uid}"]`, 'borderTopColor'),
        highlighted: Array.from(doc.querySelectorAll('section.has-conflict') as ArrayLike<any>).map((s: any) => s.dataset.group),
      };
    }, b.uid);
    expect(look.conflictBg).toBe('rgb(255, 235, 233)');
    expect(look.mappedBg).toBe('rgba(0, 0, 0, 0)');
    expect(look.podBorder).toBe('rgb(192, 28, 40)');
    expect(look.highlighted).toEqual([`pod:${b.uid}`]);
  });

  it('shows hostile marker names as escaped text under their pod, and runs none of them', async () => {
    const a = pods[0]!;
    const isEvil = (r: ShownRow): boolean => r.state === 'rejected' && r.reason.startsWith('bad-name');
    const isSvg = (r: ShownRow): boolean => r.state === 'rejected' && r.reason.startsWith('invalid-json');
    await rowWhere(page, isEvil, 'evil row');
    await rowWhere(page, isSvg, 'svg row');
    const dom = (p: Page) =>
      p.evaluate(() => {
        const doc = (globalThis as any).document;
        return {
          pwned: (globalThis as any).__pwned ?? null,
          injected: doc.querySelectorAll('img, svg, iframe, object, embed').length,
          scripts: doc.scripts.length,
          rawControls: ['\u001b', '\u202e'].some(c => (doc.body.textContent as string).includes(c)),
        };
      });
    expect(await dom(page)).toEqual({ pwned: null, injected: 0, scripts: 1, rawControls: false });
    const evil = (await shown(page)).find(isEvil)!;
    expect(evil.marker).toBe('<img src=x onerror=window.__pwned=1>\\x1b[31m\\u202eevil.json');
    expect(evil).toMatchObject({ group: `pod:${a.uid}`, marker: escapeText(EVIL), title: escapeText(a.hostPath(EVIL)) });
    expect(evil.reason).toBe('bad-name: file name contains control or formatting character U+001B');
    expect((await shown(page)).find(isSvg)).toMatchObject({ group: `pod:${a.uid}`, marker: SVG });
    // Again with the CSP switched off, so that the DOM building alone is what stops them.
    const bare = await browser!.context({ bypassCSP: true });
    try {
      const p = await bare.newPage();
      await p.goto(`http://${daemon.debugAddr}/debug/`);
      await rowWhere(p, isEvil, 'evil row without CSP');
      await new Promise(r => setTimeout(r, 300)); // an onerror would have fired by now
      expect(await dom(p)).toEqual({ pwned: null, injected: 0, scripts: 1, rawControls: false });
    } finally {
      await bare.close();
    }
  });

  it('explains a host PID in one click, and any host PID typed in', async () => {
    const a = pods[0]!;
    const writer = roles.get('a/writer')!;
    await page.click(`button.pid[data-pid="${writer.hostPid}"]`);
    // The panel once it shows the daemon's answer about `pid` (its heading), as the user reads it.
    const panel = (pid: number) =>
      eventually(
        () =>
          page.evaluate(p => {
            const body = (globalThis as any).document.getElementById('explain-body');
            return body.querySelector('h3')?.textContent === `host PID ${p}` ? (body.innerText as string) : undefined;
          }, pid),
        10_000,
        `explain panel for ${pid}`,
      );
    const text = await panel(writer.hostPid);
    expect(text).toContain(`mapped through ${a.hostPath('content-crew-writer.json')}`);
    expect(text).toContain('process-role:writer');
    expect(text).toContain(`pod-uid:${a.uid}`);
    expect(page.url()).toMatch(new RegExp(`#explain=${writer.hostPid}$`));
    // The rival has no mapping, hence no button: type its PID.
    await page.fill('#explain-pid', String(rival.hostPid));
    await page.press('#explain-pid', 'Enter');
    const why = await panel(rival.hostPid);
    expect(why).toContain('markers name its container PID, but none is mapped to it (see each marker)');
    expect(why).toMatch(/rival-editor\.json\s+conflict/);
    expect(why).toContain('selectors\n(none)');
  });

  it('follows the node without a reload: a new marker appears, a dead process turns stale, a removed marker goes', async () => {
    const a = pods[0]!;
    await page.evaluate(() => ((globalThis as any).__sameDocument = true));
    const refreshes = () => page.evaluate(() => Number((globalThis as any).document.documentElement.dataset.refreshes));
    const before = await refreshes();
    const critic = await a.startRole('critic');
    const row = await rowWhere(page, r => r.pid === String(critic.hostPid), 'critic row');
    expect(row).toMatchObject({ group: `pod:${a.uid}`, state: 'mapped', role: 'acme / content-crew / critic' });
    await a.kill(critic);
    await rowWhere(page, r => r.marker === 'content-crew-critic.json' && r.state === 'stale', 'critic stale');
    fs.rmSync(a.hostPath(SVG));
    await eventually(async () => !(await shown(page)).some(r => r.marker === SVG), 15_000, 'svg row gone');
    expect(await refreshes()).toBeGreaterThan(before);
    expect(await page.evaluate(() => (globalThis as any).__sameDocument)).toBe(true);
    expect(await page.textContent('#refreshed')).toMatch(/^refreshed \d\d:\d\d:\d\d \(\d+ s ago\), every 2 s$/);
  });

  it('says when the daemon stops answering, and keeps the last data on screen', async () => {
    expect(await page.isVisible('#banner')).toBe(false);
    await daemon.stop();
    await page.waitForSelector('#banner', { state: 'visible', timeout: 10_000 });
    expect(await page.textContent('#banner')).toMatch(/^The daemon is not answering since \d\d:\d\d:\d\d \(.+\)\. Showing the data of \d\d:\d\d:\d\d\.$/);
    expect((await shown(page)).length).toBeGreaterThan(0);
  });

  it('ran no script error, and sent no request anywhere but the daemon on loopback', () => {
    expect(pageErrors.filter(e => !/Failed to load resource: net::ERR_CONNECTION_REFUSED/.test(e))).toEqual([]);
    expect(browser!.offLoopback).toEqual([]);
    const paths = new Set(browser!.requests.map(u => new URL(u).pathname));
    for (const p of ['/debug', '/debug/', '/debug/pidmap', '/debug/markers', '/debug/status', `/debug/explain/${rival.hostPid}`]) expect(paths, p).toContain(p);
    expect([...paths].filter(p => !p.startsWith('/debug'))).toEqual([]);
    expect(browser!.requests.every(u => u.startsWith(`http://${daemon.debugAddr}/`))).toBe(true);
  });
});
