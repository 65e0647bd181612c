// PID reuse (host and container level), restart, and a missed event healed by
// the resync, on the real kernel.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonProcess } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { TestPod, alive, spawnWithPid } from '../helpers/pod.js';

const skip = skipNote('integration (PID reuse, restart)', ROOT_SKIP);

describe.skipIf(skip)('PID reuse and restart', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  let pod: TestPod;
  const started: ChildProcess[] = [];

  beforeAll(async () => {
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-kubelet-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    // Liveness checks and resyncs are slowed down so that the Attest path's own start-time check is what is tested.
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--liveness-interval', '10m', '--resync-interval', '3s'] });
    await daemon.start();
    pod = await TestPod.create(kubelet, 'v2-systemd-containerd');
  });

  afterAll(async () => {
    for (const c of started) if (c.pid && alive(c.pid)) c.kill('SIGKILL');
    await daemon?.cleanup();
    await pod?.destroy();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  it('never hands a dead process\'s role to an unrelated process that gets the same host PID', async () => {
    const p = await pod.startRole('researcher');
    await eventually(async () => (await daemon.attest(p.hostPid)).found, 10_000, 'mapped');
    await pod.kill(p);
    const intruder = await spawnWithPid(p.hostPid);
    started.push(intruder);
    expect(intruder.pid).toBe(p.hostPid);
    const r = await daemon.attest(p.hostPid);
    expect(r).toMatchObject({ found: false, selector_values: [] });
    expect((await daemon.pidmap()).some(e => e.host_pid === p.hostPid)).toBe(false);
    expect((await daemon.marker(pod.hostPath('content-crew-researcher.json')))?.state).toBe('stale');
    intruder.kill('SIGKILL');
  });

  it('never hands a role to a new process that reuses the container PID named in an old marker', async () => {
    const p = await pod.startRole('writer');
    await eventually(async () => (await daemon.attest(p.hostPid)).found, 10_000, 'mapped');
    await pod.kill(p);
    // Inside the pod: make the next fork take the dead writer's container PID.
    const sh = await pod.exec(`echo ${p.cpid - 1} > /proc/sys/kernel/ns_last_pid; sleep 100000 & wait`);
    const reuser = await eventually(() => {
      const kids = fs.readFileSync(`/proc/${sh.hostPid}/task/${sh.hostPid}/children`, 'utf8').trim();
      return kids ? Number(kids.split(/\s+/)[0]) : undefined;
    }, 5000, 'reusing process');
    const ns = fs.readFileSync(`/proc/${reuser}/status`, 'utf8').match(/NSpid:\s+(.*)/)![1]!.trim().split(/\s+/);
    expect(Number(ns[ns.length - 1])).toBe(p.cpid); // the same container PID, for real
    expect((await daemon.attest(reuser)).selector_values).toEqual([]);
    // Through a full resync too: the marker stays stale, nothing maps.
    const count = async () => (await daemon.get<{ resync_count: number }>('/debug/status')).resync_count;
    const n0 = await count();
    await eventually(async () => (await count()) > n0, 10_000, 'a full resync');
    expect((await daemon.attest(reuser)).selector_values).toEqual([]);
    expect((await daemon.marker(pod.hostPath('content-crew-writer.json')))?.state).toBe('stale');
  });

  it('rebuilds the same map after a restart, and marks stale a binding whose process died while it was down', async () => {
    const a = await pod.startRole('editor');
    const b = await pod.startRole('critic');
    await eventually(async () => (await daemon.attest(a.hostPid)).found && (await daemon.attest(b.hostPid)).found, 10_000, 'mapped');
    const before = (await daemon.pidmap()).map(e => [e.host_pid, e.process_role, e.pod_uid, e.start_time, e.marker_path]).sort();
    expect(await daemon.stop()).toBe(0);
    await pod.kill(b);
    await daemon.start();
    const after = await eventually(async () => {
      const m = await daemon.pidmap();
      return m.some(e => e.host_pid === a.hostPid) ? m : undefined;
    }, 10_000, 'map rebuilt');
    expect(after.map(e => [e.host_pid, e.process_role, e.pod_uid, e.start_time, e.marker_path]).sort()).toEqual(
      before.filter(e => e[0] !== b.hostPid),
    );
    expect((await daemon.marker(pod.hostPath('content-crew-critic.json')))?.state).toBe('stale');
    await eventually(() => !fs.existsSync(path.join(daemon.stateDir, `${b.hostPid}.json`)) && fs.existsSync(path.join(daemon.stateDir, `${a.hostPid}.json`)), 5000, 'enriched context files');
  });
});
