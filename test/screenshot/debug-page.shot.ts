// `npm run screenshot:debug-page` (as root, with Debian's chromium): a real
// daemon (kubelet layout) watching three demo pods made of real PID
// namespaces and cgroups (test/helpers/pod.ts), with mapped roles, a conflict,
// a pending marker, a stale one and two rejected ones (one with a hostile
// name); /debug/ in headless Chromium with the explain panel open on the
// conflicting process; a full-page PNG at docs/debug-page.png
// (HEXR_SCREENSHOT_OUT overrides the path).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, it } from 'vitest';
import { CHROMIUM_SKIP, HeadlessChromium } from '../helpers/browser.js';
import { DaemonProcess, REPO } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually } from '../helpers/env.js';
import { TestPod } from '../helpers/pod.js';

const OUT = path.resolve(process.env['HEXR_SCREENSHOT_OUT'] ?? path.join(REPO, 'docs', 'debug-page.png'));

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch((err: unknown) => console.error('cleanup:', err));
});

it(`writes a screenshot of /debug/ to ${OUT}`, async () => {
  const cannot = ROOT_SKIP ?? CHROMIUM_SKIP;
  if (cannot) throw new Error(`cannot take the screenshot: ${cannot}`);
  const kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-shot-'));
  cleanup.push(() => Promise.resolve(fs.rmSync(kubelet, { recursive: true, force: true })));
  fs.mkdirSync(path.join(kubelet, 'pods'));
  process.env['NODE_NAME'] ??= 'node-a1'; // the daemon inherits it, as from the DaemonSet's downward API
  const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--pending-retry', '200ms'] });
  cleanup.push(() => daemon.cleanup());
  await daemon.start();

  const pod = async (shape: 'v2-systemd-containerd' | 'v2-systemd-crio'): Promise<TestPod> => {
    const p = await TestPod.create(kubelet, shape);
    cleanup.push(() => p.destroy());
    return p;
  };
  const crew = await pod('v2-systemd-containerd');
  for (const role of ['researcher', 'writer', 'editor']) await crew.startRole(role);
  const billing = await pod('v2-systemd-crio');
  for (const role of ['planner', 'executor']) await billing.startRole(role, { agent: 'billing-agent', tenant: 'globex', extra: { framework: 'langgraph' } });
  const support = await pod('v2-systemd-containerd');
  await support.startRole('triage', { agent: 'support-bot' });
  const shortLived = await support.startRole('summarizer', { agent: 'support-bot' });
  await eventually(async () => (await daemon.pidmap()).length === 7, 20_000, 'seven roles mapped');

  // What goes wrong, for the page to show.
  const rival = await crew.startRole('editor', { file: 'rival-editor.json' }); // exclusive roles: conflict
  fs.writeFileSync(billing.hostPath('billing-agent-auditor.json'), JSON.stringify({ agent_name: 'billing-agent', tenant: 'globex', process_role: 'auditor', container_pid: 4242 }));
  await support.kill(shortLived); // its marker stays behind: stale
  fs.writeFileSync(support.hostPath('<img src=x onerror=alert(1)>\u001b[2J\u202eevil.json'), '{}');
  fs.writeFileSync(support.hostPath('support-bot-broken.json'), '{"agent_name": "support-bot",\n "tenant": acme}');
  await eventually(async () => (await daemon.markers()).filter(m => m.state !== 'mapped' && m.reason !== 'new').length === 5, 20_000, 'five problem markers');
  await eventually(async () => (await daemon.marker(crew.hostPath('rival-editor.json')))?.state === 'conflict', 10_000, 'conflict');

  const browser = await HeadlessChromium.launch();
  cleanup.push(() => browser.close());
  const ctx = await browser.context({ viewport: { width: 1600, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`http://${daemon.debugAddr}/debug/#explain=${rival.hostPid}`);
  await page.waitForSelector('#explain-body .verdict', { timeout: 10_000 });
  await eventually(async () => (await page.$$('#groups tr.row')).length === 11, 10_000, 'all 11 markers on the page');
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  await page.screenshot({ path: OUT, fullPage: true });
  if (browser.offLoopback.length) throw new Error(`requests off loopback: ${browser.offLoopback.join(', ')}`);
  console.log(`wrote ${OUT} (Chromium ${browser.version})`);
});
