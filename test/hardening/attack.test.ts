// Attack suite: hostile markers and hostile claims against the real daemon,
// kubelet layout, real pods (PID + mount namespaces, kubepods cgroups,
// bind-mounted emptyDirs). Every scenario asserts a clear reason in
// /debug/markers, no mapping for the attacker, no wrong role in the map, and
// that the valid mappings made before the attack survive it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonProcess, type MarkerEntry } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { TestPod, type PodProcess } from '../helpers/pod.js';
import { assertMapTruthful, makeKubeletRoot, roleOf, sleep, waitResyncs, watchOpens } from './lib.js';

const skip = skipNote('hardening (attack: real daemon, real namespaces)', ROOT_SKIP);

describe.skipIf(skip)('attack: hostile markers and hostile claims (kubelet layout, real pods)', () => {
  let kubelet: string;
  let outside: string;
  let daemon: DaemonProcess;
  let podA: TestPod;
  let podB: TestPod;
  let podC: TestPod;
  let good: PodProcess;
  /** Ground truth: host PID → the role that process legitimately holds. */
  const truth = new Map<number, string>();

  const settled = (file: string, ms = 10_000): Promise<MarkerEntry> =>
    eventually(async () => {
      const m = await daemon.marker(file);
      return m && m.reason !== 'new' ? m : undefined;
    }, ms, `marker ${path.basename(file)} evaluated`);

  const mappedTo = (pid: number, ms = 10_000): Promise<void> =>
    eventually(async () => (await daemon.pidmap()).some(e => e.host_pid === pid), ms, `host PID ${pid} mapped`).then(() => undefined);

  beforeAll(async () => {
    kubelet = makeKubeletRoot();
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-hard-outside-'));
    daemon = new DaemonProcess({
      layout: 'kubelet',
      root: kubelet,
      extraArgs: ['--resync-interval', '1s', '--liveness-interval', '200ms', '--pending-retry', '200ms'],
    });
    await daemon.start();
    podA = await TestPod.create(kubelet, 'v2-systemd-containerd');
    podB = await TestPod.create(kubelet, 'v1-cgroupfs');
    podC = await TestPod.create(kubelet, 'v2-systemd-crio');
    good = await podA.startRole('researcher');
    truth.set(good.hostPid, 'researcher');
    await mappedTo(good.hostPid);
  });

  afterAll(async () => {
    await daemon?.cleanup();
    for (const p of [podA, podB, podC]) await p?.destroy();
    for (const d of [kubelet, outside]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('rejects every hostile file shape with a clear reason, never opens a device node, never blocks on a FIFO', async () => {
    const dir = podA.emptyDir;
    const claim = (fields: Record<string, unknown>): string =>
      JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: 'evil', container_pid: good.cpid, ...fields });

    // Device node (c 1 3 = /dev/null): created outside, watched for open(2), then moved in (same inode).
    const devTmp = path.join(outside, 'dev.json');
    execFileSync('mknod', [devTmp, 'c', '1', '3']);
    const opens = await watchOpens(devTmp);
    try {
      fs.renameSync(devTmp, path.join(dir, 'dev.json'));
      await attackWithFiles(dir, claim);
      await waitResyncs(daemon, 2);
    } finally {
      expect(await opens.stop(), 'the device node was opened').toBe(0);
    }
  });

  async function attackWithFiles(dir: string, claim: (fields: Record<string, unknown>) => string): Promise<void> {

    const cases: [file: string, make: (p: string) => void, reason: RegExp][] = [
      ['symlink.json', p => fs.symlinkSync(podA.hostPath('content-crew-researcher.json'), p), /^symlink$/],
      [
        'hardlink.json',
        p => {
          const target = path.join(outside, 'secret.json');
          fs.writeFileSync(target, claim({ process_role: 'stolen' }));
          fs.linkSync(target, p);
        },
        /^hard-link$/,
      ],
      ['fifo.json', p => execFileSync('mkfifo', [p]), /^not-regular-file$/],
      ['dir.json', p => fs.mkdirSync(p), /^not-regular-file$/],
      [
        'huge.json',
        p => {
          const fd = fs.openSync(p, 'w');
          fs.ftruncateSync(fd, 10 * 1024 * 1024);
          fs.closeSync(fd);
        },
        /^too-large: 10485760 bytes, limit 4096$/,
      ],
      ['badutf8.json', p => fs.writeFileSync(p, Buffer.concat([Buffer.from('{"agent_name":"a'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])), /^invalid-utf8$/],
      ['nested-arrays.json', p => fs.writeFileSync(p, '['.repeat(2000) + ']'.repeat(2000)), /^invalid-json: not an object$/],
      ['nested-objects.json', p => fs.writeFileSync(p, '{"a":'.repeat(600) + '1' + '}'.repeat(600)), /^invalid-schema: missing agent_name/],
      [
        'proto.json',
        p =>
          fs.writeFileSync(
            p,
            '{"__proto__":{"process_role":"admin","container_pid":1},"constructor":{"prototype":{"process_role":"admin"}},' +
              `"agent_name":"content-crew","tenant":"acme","container_pid":${good.cpid}}`,
          ),
        /^invalid-schema: missing process_role$/,
      ],
      ['role-slash.json', p => fs.writeFileSync(p, claim({ process_role: 'a/b' })), /^invalid-schema: bad process_role/],
      ['role-colon.json', p => fs.writeFileSync(p, claim({ process_role: 'process-role:admin' })), /^invalid-schema: bad process_role/],
      ['role-dotdot.json', p => fs.writeFileSync(p, claim({ process_role: '..' })), /^invalid-schema: bad process_role/],
      ['tenant-dotdot.json', p => fs.writeFileSync(p, claim({ tenant: '../other' })), /^invalid-schema: bad tenant/],
      ['agent-space.json', p => fs.writeFileSync(p, claim({ agent_name: 'content crew' })), /^invalid-schema: bad agent_name/],
      ['role-long.json', p => fs.writeFileSync(p, claim({ process_role: 'r'.repeat(200) })), /^invalid-schema: bad process_role/],
      ['pid-negative.json', p => fs.writeFileSync(p, claim({ container_pid: -1 })), /^invalid-schema: bad container_pid/],
      ['pid-zero.json', p => fs.writeFileSync(p, claim({ container_pid: 0 })), /^invalid-schema: bad container_pid/],
      ['pid-float.json', p => fs.writeFileSync(p, claim({ container_pid: good.cpid + 0.5 })), /^invalid-schema: bad container_pid/],
      ['pid-huge.json', p => fs.writeFileSync(p, claim({ container_pid: 2 ** 53 + 2 })), /^invalid-schema: bad container_pid/],
      ['pid-huge-exp.json', p => fs.writeFileSync(p, claim({}).replace(`"container_pid":${good.cpid}`, '"container_pid":1e400')), /^invalid-schema: bad container_pid/],
      ['pid-string.json', p => fs.writeFileSync(p, claim({ container_pid: String(good.cpid) })), /^invalid-schema: bad container_pid/],
    ];
    for (const [file, make] of cases) make(path.join(dir, file));

    // The FIFO must not block anything: the daemon keeps answering, over several resyncs.
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const r = await daemon.attest(good.hostPid);
      expect(roleOf(r.selector_values)).toBe('researcher');
      const st = await daemon.get<{ mapped: number }>('/debug/status');
      expect(st.mapped).toBeGreaterThanOrEqual(1);
      // Blocked on the FIFO, the daemon would not answer at all (the attest's 5 s deadline).
      expect(performance.now() - t0).toBeLessThan(4000);
      await sleep(250);
    }

    for (const [file, , reason] of [...cases, ['dev.json', () => undefined, /^not-regular-file$/] as const]) {
      const m = await settled(path.join(dir, file));
      expect(m.state, `${file}: ${m.reason}`).toBe('rejected');
      expect(m.reason, file).toMatch(reason);
      expect(m.host_pid, file).toBeNull();
    }
    await assertMapTruthful(daemon, truth);
    const entries = await daemon.pidmap();
    expect(entries.map(e => e.marker_path)).toEqual([podA.hostPath('content-crew-researcher.json')]);
    expect(roleOf((await daemon.attest(good.hostPid)).selector_values)).toBe('researcher');

    for (const [file] of cases) fs.rmSync(path.join(dir, file), { recursive: true, force: true });
    fs.unlinkSync(path.join(dir, 'dev.json')); // not rmSync: Node 20's rmSync opens the file (an IN_OPEN we would count)
    await eventually(async () => (await daemon.markers()).filter(m => m.path.startsWith(dir)).length === 1, 10_000, 'hostile records dropped');
  }

  it("refuses a claim on another pod's process (rule 2), and maps the victim to its own role", async () => {
    // Push pod B's container PIDs far above pod A's, so no process of A can share the victim's number.
    const bumper = await podB.exec('echo 700 > /proc/sys/kernel/ns_last_pid && exec sleep 100000');
    await eventually(() => fs.readFileSync(`/proc/${bumper.hostPid}/comm`, 'utf8').trim() === 'sleep', 5000, 'ns_last_pid written');
    const victim = await podB.startRole('victim');
    truth.set(victim.hostPid, 'victim');
    expect(victim.cpid).toBeGreaterThan(700);
    const attacker = await podA.startRole('stolen', { claimCpid: victim.cpid });
    const m = await settled(podA.hostPath('content-crew-stolen.json'));
    expect(m.state).toBe('pending');
    expect(m.reason).toContain(`host PID ${victim.hostPid}: pod ${podB.uid} is not the marker's pod ${podA.uid}`);
    await mappedTo(victim.hostPid);
    await waitResyncs(daemon);
    expect((await daemon.marker(podA.hostPath('content-crew-stolen.json')))?.state).toBe('pending');
    expect(roleOf((await daemon.attest(victim.hostPid)).selector_values)).toBe('victim');
    expect((await daemon.attest(attacker.hostPid)).selector_values).toEqual([]);
    await assertMapTruthful(daemon, truth);
    await podA.kill(attacker);
    fs.rmSync(podA.hostPath('content-crew-stolen.json'));
  });

  it("refuses a claim on another container's process: same pod PID namespace and cgroup, but no bind mount (rule 3)", async () => {
    const hidden = await podA.exec(
      `exec unshare --mount --propagation private sh -c 'umount ${'/tmp/hexr-context'} && exec sleep 100000'`,
    );
    // Wait until it really runs without the mount.
    await eventually(() => fs.readFileSync(`/proc/${hidden.hostPid}/comm`, 'utf8').trim() === 'sleep', 5000, 'hidden container process');
    expect(fs.readFileSync(`/proc/${hidden.hostPid}/mountinfo`, 'utf8')).not.toContain(podA.emptyDir.slice(-40));
    const impostor = await podA.startRole('impostor', { claimCpid: hidden.cpid });
    const m = await settled(podA.hostPath('content-crew-impostor.json'));
    expect(m.state).toBe('pending');
    expect(m.reason).toMatch(new RegExp(`host PID ${hidden.hostPid}: (marker not visible to the process|context dir not visible to the process|sees a different file at the marker path)`));
    await waitResyncs(daemon);
    expect((await daemon.marker(podA.hostPath('content-crew-impostor.json')))?.state).toBe('pending');
    expect((await daemon.attest(hidden.hostPid)).selector_values).toEqual([]);
    expect((await daemon.attest(impostor.hostPid)).selector_values).toEqual([]);
    await assertMapTruthful(daemon, truth);
    await podA.kill(impostor);
    await podA.kill(hidden);
    fs.rmSync(podA.hostPath('content-crew-impostor.json'));
  });

  it('keeps an exclusive role with its first live holder (conflict), and hands it to the second once the first exits', async () => {
    const first = await podA.startRole('planner');
    truth.set(first.hostPid, 'planner');
    await mappedTo(first.hostPid);
    const second = await podA.startRole('planner', { file: 'second-planner.json' });
    const m = await settled(podA.hostPath('second-planner.json'));
    expect(m.state).toBe('conflict');
    expect(m.reason).toBe(
      `role planner (tenant acme, agent content-crew) already held by live host PID ${first.hostPid} via ${podA.hostPath('content-crew-planner.json')} (exclusive_roles)`,
    );
    await waitResyncs(daemon);
    expect((await daemon.marker(podA.hostPath('second-planner.json')))?.state).toBe('conflict');
    expect(roleOf((await daemon.attest(first.hostPid)).selector_values)).toBe('planner');
    expect((await daemon.attest(second.hostPid)).selector_values).toEqual([]);
    await assertMapTruthful(daemon, truth);

    await podA.kill(first);
    truth.delete(first.hostPid);
    truth.set(second.hostPid, 'planner');
    await mappedTo(second.hostPid);
    expect(roleOf((await daemon.attest(second.hostPid)).selector_values)).toBe('planner');
    expect((await daemon.marker(podA.hostPath('content-crew-planner.json')))?.state).toBe('stale');
    await assertMapTruthful(daemon, truth);
    await podA.kill(second);
    truth.delete(second.hostPid);
    fs.rmSync(podA.hostPath('content-crew-planner.json'));
    fs.rmSync(podA.hostPath('second-planner.json'));
  });

  it('drops the mappings of a context directory replaced by a symlink while running, maps nothing through it, and recovers when it is restored', async () => {
    const analyst = await podC.startRole('analyst');
    truth.set(analyst.hostPid, 'analyst');
    await mappedTo(analyst.hostPid);
    const moved = `${podC.emptyDir}-moved`;
    fs.renameSync(podC.emptyDir, moved);
    fs.symlinkSync(moved, podC.emptyDir); // the target still holds the valid marker, which the process still sees
    try {
      await eventually(async () => !(await daemon.pidmap()).some(e => e.host_pid === analyst.hostPid), 10_000, 'mapping dropped');
      const dm = await eventually(async () => daemon.marker(podC.emptyDir), 10_000, 'symlinked dir reported');
      expect(dm.state).toBe('rejected');
      expect(dm.reason).toMatch(/^symlink-dir: /);
      // Another valid-looking marker written through the link target: still nothing.
      fs.writeFileSync(path.join(moved, 'extra.json'), JSON.stringify({ agent_name: 'content-crew', tenant: 'acme', process_role: 'extra', container_pid: analyst.cpid }));
      await waitResyncs(daemon, 2);
      expect((await daemon.pidmap()).filter(e => e.marker_path.startsWith(podC.emptyDir) || e.marker_path.startsWith(moved))).toEqual([]);
      expect((await daemon.attest(analyst.hostPid)).selector_values).toEqual([]);
      await assertMapTruthful(daemon, new Map([...truth].filter(([pid]) => pid !== analyst.hostPid)));
    } finally {
      fs.rmSync(path.join(moved, 'extra.json'), { force: true });
      fs.unlinkSync(podC.emptyDir);
      fs.renameSync(moved, podC.emptyDir);
    }
    // The attack is over: the live process with its intact marker maps again, and the directory problem goes.
    await mappedTo(analyst.hostPid);
    expect(roleOf((await daemon.attest(analyst.hostPid)).selector_values)).toBe('analyst');
    await eventually(async () => (await daemon.marker(podC.emptyDir)) === undefined, 10_000, 'dir problem cleared');
    await assertMapTruthful(daemon, truth);
  });

  it('still maps the valid processes after all of it, and nothing else', async () => {
    await waitResyncs(daemon);
    await assertMapTruthful(daemon, truth);
    const mapped = new Set((await daemon.pidmap()).map(e => e.host_pid));
    expect([...mapped].sort()).toEqual([...truth.keys()].sort());
    for (const [pid, role] of truth) expect(roleOf((await daemon.attest(pid)).selector_values)).toBe(role);
  });
});
