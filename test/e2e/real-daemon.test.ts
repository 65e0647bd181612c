// The whole path, as in production: a SPIRE-style go-plugin host (Go) loads
// `hexr-pid-mapper plugin`, which asks the real daemon, which maps real
// processes in real PID namespaces and kubepods cgroups.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { DaemonProcess } from '../helpers/daemon.js';
import { GO_SKIP, ON_CPU_FIGURE, ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { buildHost, runHost, type BuiltHost } from '../helpers/go-host.js';
import { TestPod, spawnWithPid, type PodProcess } from '../helpers/pod.js';
import type { ChildProcess } from 'node:child_process';

const skip = skipNote('e2e (Go host + real daemon + namespaces)', GO_SKIP ?? ROOT_SKIP);

/** SPIRE turns each value into a selector of type <plugin name>. */
const asSpire = (values: string[]): string[] => values.map(v => `hexr:${v}`).sort();

describe.skipIf(skip)('SPIRE-style host → plugin → real daemon', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  let host: BuiltHost;
  let pod: TestPod;
  let researcher: PodProcess;
  let writer: PodProcess;

  beforeAll(async () => {
    await ensureBuilt();
    host = await buildHost();
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-kubelet-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--liveness-interval', '200ms'] });
    await daemon.start();
    pod = await TestPod.create(kubelet, 'v2-systemd-containerd');
    researcher = await pod.startRole('researcher');
    writer = await pod.startRole('writer');
    await eventually(async () => (await daemon.pidmap()).length === 2, 10_000, 'both roles mapped');
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await pod?.destroy();
    host?.cleanup();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  const config = (): string => `daemon_socket = "${daemon.socket}"\n\nattest_timeout = "2s"`;

  it('gives each role process its hexr selectors, and none to the host or the plugin itself', async () => {
    const run = await runHost(host, { config: config(), pids: [researcher.hostPid, writer.hostPid, 'host', 'plugin'], concurrency: 4 });
    expect(run.code, run.stderr).toBe(0);
    const byPid = new Map(run.events('attest').map(e => [e['pid'] as number, e]));
    expect(asSpire(byPid.get(researcher.hostPid)!['selector_values'])).toEqual(
      [
        'hexr:process-role:researcher',
        'hexr:agent-name:content-crew',
        'hexr:tenant:acme',
        'hexr:framework:crewai',
        `hexr:pod-uid:${pod.uid}`,
        `hexr:container-id:${pod.containerId}`,
        'hexr:spiffe-path:agent/acme/content-crew/researcher',
      ].sort(),
    );
    expect(byPid.get(writer.hostPid)!['selector_values']).toContain('process-role:writer');
    const others = run.events('attest').filter(e => e['pid'] !== researcher.hostPid && e['pid'] !== writer.hostPid);
    expect(others).toHaveLength(2);
    for (const e of others) {
      expect(e['error']).toBeUndefined();
      expect(e['selector_values'] ?? []).toEqual([]);
    }
  });

  it('answers many concurrent Attest calls with the right role every time', async () => {
    const run = await runHost(host, { config: config(), pids: [researcher.hostPid, writer.hostPid], concurrency: 16, repeat: 50 });
    expect(run.code, run.stderr).toBe(0);
    const events = run.events('attest');
    expect(events).toHaveLength(100);
    for (const e of events) {
      expect(e['error']).toBeUndefined();
      const role = e['pid'] === researcher.hostPid ? 'researcher' : 'writer';
      expect(e['selector_values']).toContain(`process-role:${role}`);
      expect(e['selector_values']).not.toContain(`process-role:${role === 'writer' ? 'researcher' : 'writer'}`);
    }
    // The start-up's event-loop delay is on the first copy's line, the rest on the exit line.
    const lines = run.pluginLogLines();
    const copied = lines.filter(l => l['@message'] === "copy of the daemon's state complete");
    expect(copied[0]).toMatchObject({ mappings: 2, event_loop_delay_max_ms: expect.any(Number), event_loop_delay_max_on_cpu_ms: ON_CPU_FIGURE });
    for (const l of copied.slice(1)) expect(l['event_loop_delay_max_ms']).toBeUndefined();
    expect(lines.find(l => l['@message'] === 'plugin stopped')).toMatchObject({ event_loop_delay_max_ms: expect.any(Number), event_loop_delay_max_on_cpu_ms: ON_CPU_FIGURE });
  });

  it('gives nothing to a process that exited, and says UNAVAILABLE quickly when the daemon is down', async () => {
    const gone = await pod.startRole('temp');
    await eventually(async () => (await daemon.attest(gone.hostPid)).found, 10_000, 'temp mapped');
    await pod.kill(gone);
    const run = await runHost(host, { config: config(), pids: [gone.hostPid] });
    expect(run.code, run.stderr).toBe(0);
    expect(run.events('attest')[0]!['selector_values'] ?? []).toEqual([]);

    const down = await runHost(host, { config: `daemon_socket = "${path.join(daemon.workDir, 'nobody.sock')}"\nattest_timeout = "10s"`, pids: [researcher.hostPid] });
    expect(down.code, down.stderr).toBe(0);
    const e = down.events('attest')[0]!;
    expect(e['error']).toMatchObject({ code: 'Unavailable' });
    expect(e['ms']).toBeLessThan(5000); // at once, not after attest_timeout
  });
});

describe.skipIf(skip)('plugin answering from its copy of the map', () => {
  it('never answers for a process that reused a mapped host PID, even before the daemon notices', async () => {
    const kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-kubelet-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    // No liveness sweep, no resync: only the start-time checks stand between the reused PID and the role.
    const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--liveness-interval', '10m', '--resync-interval', '10m'] });
    const host = await buildHost();
    await daemon.start();
    const pod = await TestPod.create(kubelet, 'v1-cgroupfs');
    let intruder: ChildProcess | undefined;
    try {
      const p = await pod.startRole('researcher');
      await eventually(async () => (await daemon.attest(p.hostPid)).found, 10_000, 'mapped');
      const config = `daemon_socket = "${daemon.socket}"`;
      const before = await runHost(host, { config, pids: [p.hostPid], repeat: 200 });
      expect(before.code, before.stderr).toBe(0);
      expect(before.events('attest').every(e => (e['selector_values'] as string[]).includes('process-role:researcher'))).toBe(true);
      await pod.kill(p);
      intruder = await spawnWithPid(p.hostPid);
      const after = await runHost(host, { config, pids: [p.hostPid], repeat: 200 });
      expect(after.code, after.stderr).toBe(0);
      expect(after.events('attest')).toHaveLength(200);
      for (const e of after.events('attest')) {
        expect(e['error']).toBeUndefined();
        expect(e['selector_values'] ?? []).toEqual([]);
      }
    } finally {
      intruder?.kill('SIGKILL');
      await daemon.cleanup();
      await pod.destroy();
      host.cleanup();
      fs.rmSync(kubelet, { recursive: true, force: true });
    }
  });
});
