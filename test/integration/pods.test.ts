// The PID mapper against real PID namespaces, real kubepods-shaped cgroups,
// real bind mounts standing in for emptyDir volumes, and real inotify.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonProcess } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { TestPod, type PodProcess } from '../helpers/pod.js';
import { MAIN } from '../helpers/daemon.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const skip = skipNote('integration (real namespaces)', ROOT_SKIP);

describe.skipIf(skip)('daemon on real PID namespaces (kubelet layout)', () => {
  let kubelet: string;
  let daemon: DaemonProcess;
  const pods: TestPod[] = [];
  const roles = ['researcher', 'writer', 'editor'];
  const procs = new Map<string, { pod: TestPod; proc: PodProcess; role: string }>();

  beforeAll(async () => {
    kubelet = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-kubelet-'));
    fs.mkdirSync(path.join(kubelet, 'pods'));
    daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--resync-interval', '2s', '--liveness-interval', '200ms'] });
    await daemon.start();
    for (const shape of ['v1-cgroupfs', 'v2-systemd-containerd', 'v2-systemd-crio'] as const) {
      pods.push(await TestPod.create(kubelet, shape));
    }
    // Every pod gets the same three roles: container PIDs 2, 3, 4 in every pod.
    for (const pod of pods) {
      for (const role of roles) {
        const proc = await pod.startRole(role);
        procs.set(`${pod.uid}/${role}`, { pod, proc, role });
      }
    }
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const p of pods) await p.destroy();
    if (kubelet) fs.rmSync(kubelet, { recursive: true, force: true });
  });

  it('maps every marker to the one host PID that wrote it, although container PIDs repeat across pods', async () => {
    const cpids = [...procs.values()].map(p => p.proc.cpid);
    expect(new Set(cpids).size).toBeLessThan(cpids.length); // the ambiguity is real
    const entries = await eventually(async () => {
      const e = await daemon.pidmap();
      return e.length === procs.size ? e : undefined;
    }, 15_000, 'all nine mappings');
    for (const { pod, proc, role } of procs.values()) {
      const e = entries.find(x => x.host_pid === proc.hostPid);
      expect(e, `mapping for ${role} in pod ${pod.shape}`).toBeDefined();
      expect(e!.process_role).toBe(role);
      expect(e!.pod_uid).toBe(pod.uid);
      expect(e!.container_id).toBe(pod.containerId);
      expect(e!.container_pid).toBe(proc.cpid);
      expect(e!.marker_path).toBe(pod.hostPath(`content-crew-${role}.json`));
    }
    expect(new Set(entries.map(e => e.host_pid)).size).toBe(entries.length);
  });

  it('answers Attest with the full selector vocabulary for a role process, and nothing for others', async () => {
    const { pod, proc } = procs.get(`${pods[1]!.uid}/writer`)!;
    const r = await daemon.attest(proc.hostPid);
    expect(r.found).toBe(true);
    expect([...r.selector_values].sort()).toEqual(
      [
        'process-role:writer',
        'agent-name:content-crew',
        'tenant:acme',
        'framework:crewai',
        `pod-uid:${pod.uid}`,
        `container-id:${pod.containerId}`,
        'spiffe-path:agent/acme/content-crew/writer',
      ].sort(),
    );
    const mine = await daemon.attest(process.pid);
    expect(mine).toMatchObject({ found: false, selector_values: [] });
    const pid1 = await daemon.attest(pods[0]!.pid1);
    expect(pid1.selector_values).toEqual([]);
  });

  it('explains through the CLI why a PID gets its selectors, or none', async () => {
    const { proc, pod } = procs.get(`${pods[2]!.uid}/editor`)!;
    const run = (pid: number) =>
      execFileP(process.execPath, [MAIN, 'explain', '--addr', daemon.debugAddr, String(pid)], { timeout: 10_000 }).then(r => r.stdout);
    const mapped = await run(proc.hostPid);
    expect(mapped).toContain(`PID ${proc.hostPid}: mapped through ${pod.hostPath('content-crew-editor.json')}`);
    expect(mapped).toContain('process-role:editor');
    const init = await run(pods[2]!.pid1);
    expect(init).toContain('no marker names container PID 1: unknown processes get no selectors');
    expect(init).toContain('selectors: (none)');
  });

  it('gives nothing to a process in pod A that claims the container PID of a process in pod B', async () => {
    const [a, b] = [pods[0]!, pods[1]!];
    // B gets extra processes so it has a container PID that A lacks.
    await b.exec('exec sleep 100000');
    const victim = await b.startRole('victim-role');
    const attacker = await a.startRole('stolen', { claimCpid: victim.cpid });
    expect(victim.cpid).not.toBe(attacker.cpid);
    const file = a.hostPath('content-crew-stolen.json');
    const m = await eventually(async () => {
      const x = await daemon.marker(file);
      return x && x.state !== 'mapped' && x.reason !== 'new' ? x : undefined;
    }, 10_000, 'attacker marker evaluated');
    // Pending: no process of pod A has that container PID. (Or stale: pod A's own short-lived
    // `mv`, which renamed the marker into place, happened to get it, was mapped, and exited:
    // the rules allow a pod's process to be named by its own pod's marker.) Never pod B's victim.
    expect(['pending', 'stale']).toContain(m.state);
    expect(m.host_pid).not.toBe(victim.hostPid);
    await eventually(async () => (await daemon.pidmap()).some(e => e.host_pid === victim.hostPid), 10_000, 'victim mapped');
    const entries = await daemon.pidmap();
    expect(entries.find(e => e.process_role === 'stolen' && e.host_pid === victim.hostPid)).toBeUndefined();
    expect(entries.find(e => e.host_pid === victim.hostPid)?.process_role).toBe('victim-role');
    expect((await daemon.attest(attacker.hostPid)).selector_values).toEqual([]);
  });

  it('never follows a symlinked marker or a symlinked context directory', async () => {
    const pod = pods[2]!;
    // A symlink marker pointing at a valid marker file elsewhere.
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-elsewhere-'));
    const good = pod.hostPath('content-crew-researcher.json');
    fs.copyFileSync(good, path.join(elsewhere, 'copy.json'));
    fs.symlinkSync(path.join(elsewhere, 'copy.json'), pod.hostPath('link.json'));
    const m = await eventually(async () => daemon.marker(pod.hostPath('link.json')), 10_000, 'symlink marker seen');
    expect(m.state).toBe('rejected');
    expect(m.reason).toBe('symlink');

    // A pod whose whole context directory is a symlink to a directory full of valid markers.
    const evil = new TestPod(kubelet, 'v1-cgroupfs');
    const volumes = path.dirname(evil.emptyDir);
    fs.mkdirSync(volumes, { recursive: true });
    fs.symlinkSync(pod.emptyDir, evil.emptyDir);
    try {
      const dm = await eventually(async () => daemon.marker(evil.emptyDir), 10_000, 'symlinked dir rejected');
      expect(dm.state).toBe('rejected');
      expect(dm.reason).toMatch(/symlink/);
      const entries = await daemon.pidmap();
      expect(entries.filter(e => e.marker_path.startsWith(evil.emptyDir))).toEqual([]);
    } finally {
      fs.rmSync(path.join(kubelet, 'pods', evil.uid), { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
      fs.rmSync(pod.hostPath('link.json'), { force: true });
    }
  });

  it('rejects a 10 MiB marker from its size, without reading it', async () => {
    const pod = pods[0]!;
    const big = pod.hostPath('huge.json');
    const fd = fs.openSync(big, 'w');
    fs.ftruncateSync(fd, 10 * 1024 * 1024);
    fs.closeSync(fd);
    try {
      // (The empty file may be seen first, between open and ftruncate: wait for the final verdict.)
      const m = await eventually(async () => {
        const x = await daemon.marker(big);
        return x?.reason.startsWith('too-large') ? x : undefined;
      }, 10_000, 'huge marker rejected');
      expect(m.state).toBe('rejected');
      expect(m.reason).toBe('too-large: 10485760 bytes, limit 4096');
    } finally {
      fs.rmSync(big, { force: true });
    }
  });

  it('evicts a mapping when its process exits and removes the mapping when the marker goes', async () => {
    const pod = pods[1]!;
    const p = await pod.startRole('short-lived');
    await eventually(async () => (await daemon.pidmap()).some(e => e.host_pid === p.hostPid), 10_000, 'mapped');
    await eventually(() => fs.existsSync(path.join(daemon.stateDir, `${p.hostPid}.json`)), 5000, 'enriched context file written');
    await pod.kill(p);
    await eventually(async () => !(await daemon.pidmap()).some(e => e.host_pid === p.hostPid), 10_000, 'evicted');
    expect((await daemon.get<{ verdict: string }>(`/debug/explain/${p.hostPid}`)).verdict).toBe('no such process');
    expect((await daemon.marker(pod.hostPath('content-crew-short-lived.json')))?.state).toBe('stale');
    await eventually(() => !fs.existsSync(path.join(daemon.stateDir, `${p.hostPid}.json`)), 5000, 'enriched context file removed');
    fs.rmSync(pod.hostPath('content-crew-short-lived.json'));
    await eventually(async () => (await daemon.marker(pod.hostPath('content-crew-short-lived.json'))) === undefined, 10_000, 'record dropped');
  });
});
