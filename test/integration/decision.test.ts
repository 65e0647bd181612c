// The identity decision on the real daemon, real pods and real files
/* eslint-disable no-control-regex -- this file checks that control characters never reach an operator */
// (issue 10): who holds a role survives restarts and crashes whatever other
// files claim, transient trouble with the holder's own file moves nothing, a
// lost or corrupt decision state fails safe, start_slack is exact to the
// clock tick, and pod-controlled names never reach an operator raw.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonProcess, MAIN, type MarkerEntry } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { TestPod, type PodProcess } from '../helpers/pod.js';

const skip = skipNote('integration (identity decision)', ROOT_SKIP);

const roleOf = (sel: string[]): string | undefined => sel.find(s => s.startsWith('process-role:'))?.slice('process-role:'.length);

describe.skipIf(skip)('the identity decision on a real daemon', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  const pods: TestPod[] = [];

  beforeAll(async () => {
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-decision-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--resync-interval', '2s', '--pending-retry', '200ms', '--start-slack', '100ms'] });
    await daemon.start();
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const p of pods) await p.destroy();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  async function newPod(): Promise<TestPod> {
    const p = await TestPod.create(kubelet, 'v2-systemd-containerd');
    pods.push(p);
    return p;
  }

  async function roleAt(pid: number): Promise<string | undefined> {
    return roleOf((await daemon.attest(pid)).selector_values);
  }

  async function markerIn(file: string, pred: (m: MarkerEntry) => boolean, what: string): Promise<MarkerEntry> {
    return eventually(async () => {
      const m = await daemon.marker(file);
      return m && pred(m) ? m : undefined;
    }, 10_000, what);
  }

  /** A claim written by someone else in the pod: role `role` for the process `target`. */
  function claim(pod: TestPod, file: string, role: string, target: PodProcess): void {
    const tmp = pod.hostPath(`.${file}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: role, container_pid: target.cpid }));
    fs.renameSync(tmp, pod.hostPath(file));
  }

  it('keeps both identities across SIGTERM and SIGKILL restarts while swapped claims wait in conflict', async () => {
    const pod = await newPod();
    const researcher = await pod.startRole('researcher');
    const writer = await pod.startRole('writer');
    await eventually(async () => (await roleAt(researcher.hostPid)) === 'researcher' && (await roleAt(writer.hostPid)) === 'writer', 10_000, 'both mapped');
    // Names that sort before the real markers: a restart that decided by file name would swap them.
    claim(pod, '0-evil-a.json', 'researcher', writer);
    claim(pod, '0-evil-b.json', 'writer', researcher);
    await markerIn(pod.hostPath('0-evil-a.json'), m => m.state === 'conflict', 'evil-a in conflict');
    await markerIn(pod.hostPath('0-evil-b.json'), m => m.state === 'conflict', 'evil-b in conflict');
    for (const restart of ['SIGTERM', 'SIGKILL', 'SIGTERM'] as const) {
      if (restart === 'SIGTERM') expect(await daemon.stop()).toBe(0);
      else await daemon.kill9();
      await daemon.start();
      expect(await roleAt(researcher.hostPid), `after ${restart}`).toBe('researcher');
      expect(await roleAt(writer.hostPid), `after ${restart}`).toBe('writer');
      expect((await daemon.marker(pod.hostPath('0-evil-a.json')))?.state).toBe('conflict');
      expect((await daemon.marker(pod.hostPath('0-evil-b.json')))?.state).toBe('conflict');
    }
  });

  it('keeps a held role with its holder after a restart when 0-evil.json claims it for another process', async () => {
    const pod = await newPod();
    const holder = await pod.startRole('planner');
    const other = await pod.startRole('helper');
    await eventually(async () => (await roleAt(holder.hostPid)) === 'planner', 10_000, 'holder mapped');
    await eventually(async () => (await roleAt(other.hostPid)) === 'helper', 10_000, 'helper mapped');
    fs.rmSync(pod.hostPath('content-crew-helper.json')); // frees the helper's PID: the only obstacle left is the held role
    await eventually(async () => (await roleAt(other.hostPid)) === undefined, 10_000, 'helper unmapped');
    claim(pod, '0-evil.json', 'planner', other);
    const m = await markerIn(pod.hostPath('0-evil.json'), x => x.state === 'conflict', 'evil in conflict');
    expect(m.reason).toMatch(/role planner.* already held by live host PID/);
    await daemon.kill9();
    await daemon.start();
    expect(await roleAt(holder.hostPid)).toBe('planner');
    expect(await roleAt(other.hostPid)).toBeUndefined();
    expect((await daemon.marker(pod.hostPath('content-crew-planner.json')))?.state).toBe('mapped');
    expect((await daemon.marker(pod.hostPath('0-evil.json')))?.state).toBe('conflict');
  });

  it('does not move a role when the holder\'s file gets a transient hard link, and gives it back after', async () => {
    const pod = await newPod();
    const holder = await pod.startRole('critic');
    await eventually(async () => (await roleAt(holder.hostPid)) === 'critic', 10_000, 'holder mapped');
    const rival = await pod.startRole('critic', { file: 'rival-critic.json' });
    await markerIn(pod.hostPath('rival-critic.json'), m => m.state === 'conflict', 'rival queued');
    const link = pod.hostPath('.l');
    fs.linkSync(pod.hostPath('content-crew-critic.json'), link);
    try {
      const held = await markerIn(pod.hostPath('content-crew-critic.json'), m => m.state === 'rejected', 'holder suspended');
      await new Promise(r => setTimeout(r, 1500));
      expect(await roleAt(rival.hostPid)).toBeUndefined();
      expect((await daemon.marker(pod.hostPath('rival-critic.json')))?.state).toBe('conflict');
      expect(held.reason).toMatch(/^hard-link; role and host PID \d+ stay reserved/);
      expect(held.host_pid).toBe(holder.hostPid);
      expect(await roleAt(holder.hostPid)).toBeUndefined(); // nothing answered while the file is in doubt
      // A restart while the link is there changes nothing either.
      await daemon.kill9();
      await daemon.start();
      expect(await roleAt(rival.hostPid)).toBeUndefined();
      expect((await daemon.marker(pod.hostPath('content-crew-critic.json')))?.state).toBe('rejected');
    } finally {
      fs.rmSync(link);
    }
    await eventually(async () => (await roleAt(holder.hostPid)) === 'critic', 10_000, 'holder resumed');
    expect((await daemon.marker(pod.hostPath('rival-critic.json')))?.state).toBe('conflict');
    expect(await roleAt(rival.hostPid)).toBeUndefined();
  });

  it('fails safe after state_dir loss: contended roles map nothing until resolved, uncontended ones map', async () => {
    const pod = await newPod();
    const holder = await pod.startRole('editor');
    const solo = await pod.startRole('reviewer');
    await eventually(async () => (await roleAt(holder.hostPid)) === 'editor' && (await roleAt(solo.hostPid)) === 'reviewer', 10_000, 'mapped');
    const rival = await pod.startRole('editor', { file: 'rival-editor.json' });
    await markerIn(pod.hostPath('rival-editor.json'), m => m.state === 'conflict', 'rival queued');
    expect(await daemon.stop()).toBe(0);
    fs.rmSync(daemon.stateDir, { recursive: true, force: true });
    // The attacker bumps the holder's ctime while the daemon is down: it now looks younger than the rival.
    fs.chmodSync(pod.hostPath('content-crew-editor.json'), 0o600);
    await daemon.start();
    expect(await roleAt(solo.hostPid)).toBe('reviewer');
    expect(await roleAt(holder.hostPid)).toBeUndefined();
    expect(await roleAt(rival.hostPid)).toBeUndefined();
    for (const f of ['content-crew-editor.json', 'rival-editor.json']) {
      const m = await daemon.marker(pod.hostPath(f));
      expect(m?.state).toBe('conflict');
      expect(m?.reason).toMatch(/claims of equal age compete/);
    }
    // Resolved: the rival goes, the holder maps again.
    fs.rmSync(pod.hostPath('rival-editor.json'));
    await eventually(async () => (await roleAt(holder.hostPid)) === 'editor', 10_000, 'holder mapped again');
  });

  it('moves a corrupt decision journal aside, says so, and fails safe', async () => {
    const pod = await newPod();
    const holder = await pod.startRole('tester');
    await eventually(async () => (await roleAt(holder.hostPid)) === 'tester', 10_000, 'mapped');
    const rival = await pod.startRole('tester', { file: 'rival-tester.json' });
    await markerIn(pod.hostPath('rival-tester.json'), m => m.state === 'conflict', 'rival queued');
    expect(await daemon.stop()).toBe(0);
    const journal = path.join(daemon.stateDir, 'decisions.jsonl');
    const lines = fs.readFileSync(journal, 'utf8').split('\n');
    lines.splice(1, 0, '{"p":"x","k":');
    fs.writeFileSync(journal, lines.join('\n'));
    await daemon.start();
    expect(daemon.stderrLines.some(l => l.includes('decision state unusable') && l.includes('is corrupt'))).toBe(true);
    expect(fs.readdirSync(daemon.stateDir).some(n => n.startsWith('decisions.jsonl.corrupt-'))).toBe(true);
    expect(await roleAt(holder.hostPid)).toBeUndefined();
    expect(await roleAt(rival.hostPid)).toBeUndefined();
    fs.rmSync(pod.hostPath('rival-tester.json'));
    await eventually(async () => (await roleAt(holder.hostPid)) === 'tester', 10_000, 'holder mapped again');
  });

  it('refuses a process that started after the marker was written, to the clock tick (start_slack 100 ms)', async () => {
    const pod = await newPod();
    // A claim for a container PID nobody has yet...
    const cpid = 300 + Math.floor(Math.random() * 200);
    fs.writeFileSync(pod.hostPath('early.json'), JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: 'early', container_pid: cpid }));
    await new Promise(r => setTimeout(r, 400));
    // ...then, 400 ms later, a process with that container PID.
    const sh = await pod.exec(`echo ${cpid - 1} > /proc/sys/kernel/ns_last_pid; sleep 100000 & wait`);
    const late = await eventually(() => {
      const kids = fs.readFileSync(`/proc/${sh.hostPid}/task/${sh.hostPid}/children`, 'utf8').trim();
      return kids ? Number(kids.split(/\s+/)[0]) : undefined;
    }, 5000, 'late process');
    const m = await markerIn(pod.hostPath('early.json'), x => /started .* ms after the marker was written/.test(x.reason), 'refused as too late');
    expect(m.state).toBe('pending');
    const ms = Number(/started ([\d.]+) ms after/.exec(m.reason)?.[1]);
    expect(ms).toBeGreaterThan(300); // measured to the tick, not to the second
    expect(ms).toBeLessThan(5000);
    expect(await roleAt(late)).toBeUndefined();
  });

  it('rejects marker names with control characters and never shows them raw', async () => {
    const pod = await newPod();
    const victim = await pod.startRole('worker');
    await eventually(async () => (await roleAt(victim.hostPid)) === 'worker', 10_000, 'mapped');
    const body = (role: string): string => JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: role, container_pid: victim.cpid });
    const forged = `x.json\n${victim.hostPid}  1  acme  content-crew  admin  ${pod.uid}  fake.json`;
    const names = [`${forged}.json`, 'esc\u001b[31mred.json', 'csi\u009b2J.json', 'bidi\u202egnp.json'];
    for (const n of names) fs.writeFileSync(pod.hostPath(n), body('admin'));
    const invalid = Buffer.concat([Buffer.from(`${pod.emptyDir}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.json')]);
    fs.writeFileSync(invalid, body('admin'));
    for (const n of names) {
      const m = await markerIn(pod.hostPath(n), x => x.state === 'rejected', `rejected ${JSON.stringify(n)}`);
      expect(m.reason).toMatch(/^bad-name: file name contains control or formatting character U\+/);
    }
    const bad = await markerIn(`${pod.emptyDir}/bad-\\xff\\xfe.json`, x => x.state === 'rejected', 'invalid UTF-8 name rejected');
    expect(bad.reason).toBe('bad-name: file name is not valid UTF-8');
    expect(await roleAt(victim.hostPid)).toBe('worker');
    // The raw JSON carries every such character as an escape.
    const raw = await (await fetch(`http://${daemon.debugAddr}/debug/markers`)).text();
    expect(raw).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/); // newlines outside strings are JSON layout
    expect(raw).toContain('\\u009b');
    // The operator's table: one line per mapping, no forged row.
    const table = execFileSync(process.execPath, [MAIN, 'pidmap', '--addr', daemon.debugAddr, '--pod', pod.uid], { encoding: 'utf8' });
    expect(table.split('\n').filter(l => l.includes('admin'))).toEqual([]);
    expect(table).not.toMatch(/[\u001b\u009b\u202e]/);
  });
});
