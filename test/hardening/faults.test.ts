// Fault suite: lost inotify events, a context root deleted and recreated, an
// unwritable state_dir, the daemon SIGKILLed and restarted under a serving
// plugin, the plugin's host disappearing, PID reuse under churn. Each asserts
// that no wrong role is handed out and no valid mapping is lost for good.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDaemonConfig } from '../../src/daemon/config.js';
import { runDaemon, type RunningDaemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { ensureBuilt, MAIN_JS, REPO } from '../helpers/build.js';
import { DaemonProcess } from '../helpers/daemon.js';
import { GO_SKIP, ROOT_SKIP, childEnv, eventually, skipNote } from '../helpers/env.js';
import { buildHost, type BuiltHost } from '../helpers/go-host.js';
import { PLUGIN_ENV, socketFromHandshake } from '../helpers/plugin-process.js';
import { TestPod, alive, childrenOf, exited, shq, spawnWithPid, startTicks } from '../helpers/pod.js';
import { assertMapTruthful, makeKubeletRoot, roleOf, sleep, waitResyncs } from './lib.js';

const skip = skipNote('hardening (faults: real daemon, real namespaces)', ROOT_SKIP);
const skipGo = skipNote('hardening (faults through the Go host)', ROOT_SKIP ?? GO_SKIP);

/** Host processes (flat layout): each writes its marker like the SDK, then sleeps. Killed by PID in afterAll. */
class HostRoles {
  readonly procs: ChildProcess[] = [];
  constructor(readonly dir: string) {}
  async start(role: string, file = `crew-${role}.json`): Promise<number> {
    const json = JSON.stringify({ agent_name: 'crew', tenant: 'acme', process_role: role }).slice(0, -1);
    const tmp = path.join(this.dir, `.${file}.tmp`);
    const script = `printf '%s,"container_pid":%s}' ${shq(json)} $$ > ${shq(tmp)} && mv ${shq(tmp)} ${shq(path.join(this.dir, file))} && exec sleep 100000`;
    const c = spawn('sh', ['-c', script], { stdio: 'ignore' });
    this.procs.push(c);
    const pid = c.pid as number;
    await eventually(() => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep', 5000, 'role process running');
    return pid;
  }
  async kill(pid: number): Promise<void> {
    const c = this.procs.find(p => p.pid === pid);
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise(r => c.once('exit', r));
    process.kill(pid, 'SIGKILL');
    await done;
  }
  async killAll(): Promise<void> {
    for (const c of this.procs) if (c.pid !== undefined) await this.kill(c.pid);
  }
}

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

describe.skipIf(skip)('faults: lost events, vanished roots, unwritable state_dir (flat and kubelet)', () => {
  const dirs: string[] = [];
  const roles: HostRoles[] = [];
  afterAll(async () => {
    for (const r of roles) await r.killAll();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('heals inotify events lost while the watcher is deaf (as on a queue overflow) at the next resync', async () => {
    const work = tmp('hexr-hard-lost-');
    dirs.push(work);
    const ctx = path.join(work, 'ctx');
    fs.mkdirSync(ctx);
    const r = new HostRoles(ctx);
    roles.push(r);
    const config = loadDaemonConfig(
      [
        '--layout', 'flat', '--context-root', ctx, '--container-context-dir', ctx, '--state-dir', path.join(work, 'state'),
        '--socket', path.join(work, 'api.sock'), '--debug-addr', 'off', '--metrics-addr', 'off',
        '--resync-interval', '1500ms', '--liveness-interval', '200ms', '--pending-retry', '10m',
      ],
      {},
    );
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
    const ac = new AbortController();
    let running: RunningDaemon | undefined;
    const done = runDaemon(config, log, ac.signal, d => (running = d));
    try {
      const d = await eventually(() => running, 10_000, 'in-process daemon');
      const mappedPids = (): Set<number> => new Set([...d.reconciler.snapshot().values()].map(m => m.hostPid));
      const kept = await r.start('kept');
      await eventually(() => mappedPids().has(kept), 5000, 'kept mapped by its event');

      // Deaf: 40 markers created and one mapped marker deleted, no event seen.
      d.watcher.paused = true;
      const truth = new Map<number, string>();
      const quiet: number[] = [];
      for (let i = 0; i < 40; i++) {
        const pid = await r.start(`quiet-${i}`);
        quiet.push(pid);
        truth.set(pid, `quiet-${i}`);
      }
      fs.rmSync(path.join(ctx, 'crew-kept.json'));
      // Only a resync can tell: wait for two from now (the first may have
      // begun before the last change), then everything is right.
      const resyncsBefore = d.reconciler.resyncCount;
      await eventually(() => d.reconciler.resyncCount >= resyncsBefore + 2, 10_000, 'two resyncs');
      const m = mappedPids();
      for (const pid of quiet) expect(m.has(pid), `host PID ${pid} mapped after the resync`).toBe(true);
      expect(m.has(kept), 'mapping of a deleted marker removed').toBe(false);

      // Many events at once, watcher on: 150 markers created in parallel and 40 deleted in a burst.
      d.watcher.paused = false;
      const burst = await Promise.all(Array.from({ length: 150 }, (_, i) => r.start(`burst-${i}`)));
      burst.forEach((pid, i) => truth.set(pid, `burst-${i}`));
      for (let i = 0; i < 40; i++) fs.rmSync(path.join(ctx, `crew-quiet-${i}.json`));
      await eventually(() => {
        const now = mappedPids();
        return burst.every(p => now.has(p)) && quiet.every(p => !now.has(p));
      }, 10_000, 'burst applied');
      const snap = d.reconciler.snapshot();
      for (const e of snap.values()) expect(e.marker.process_role, `host PID ${e.hostPid}`).toBe(truth.get(e.hostPid));
      expect(snap.size).toBe(burst.length);
      expect(lines.filter(l => l.includes('"@level":"error"'))).toEqual([]);
    } finally {
      ac.abort();
      await done;
    }
  });

  it('flat: a deleted context root drops its mappings; after it is recreated, new markers map and old ones stay gone', async () => {
    const work = tmp('hexr-hard-flatroot-');
    dirs.push(work);
    const ctx = path.join(work, 'ctx');
    fs.mkdirSync(ctx);
    const r = new HostRoles(ctx);
    roles.push(r);
    const daemon = new DaemonProcess({ layout: 'flat', root: ctx, extraArgs: ['--container-context-dir', ctx, '--resync-interval', '1s', '--liveness-interval', '200ms'] }, path.join(work, 'd'));
    fs.mkdirSync(daemon.workDir, { recursive: true });
    await daemon.start();
    try {
      const old = await r.start('old');
      await eventually(async () => (await daemon.attest(old)).found, 10_000, 'old mapped');
      fs.rmSync(ctx, { recursive: true });
      await eventually(async () => (await daemon.pidmap()).length === 0, 10_000, 'mapping dropped with the root');
      expect((await daemon.attest(old)).selector_values).toEqual([]);
      fs.mkdirSync(ctx);
      const fresh = await r.start('fresh');
      await eventually(async () => (await daemon.attest(fresh)).found, 10_000, 'marker written after recreation maps');
      await waitResyncs(daemon, 2);
      await assertMapTruthful(daemon, new Map([[fresh, 'fresh']]));
      expect((await daemon.attest(old)).selector_values).toEqual([]);
      expect(daemon.stderrLines.some(l => /watch root (disappeared|was replaced)/.test(l))).toBe(true);
    } finally {
      await daemon.cleanup();
    }
  });

  it('kubelet: pods/ deleted and recreated: old mappings go, a pod created afterwards maps, a file a live process cannot see does not', async () => {
    const kubelet = makeKubeletRoot();
    dirs.push(kubelet);
    const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--resync-interval', '1s', '--liveness-interval', '200ms', '--pending-retry', '200ms'] });
    await daemon.start();
    const pods: TestPod[] = [];
    try {
      const p1 = await TestPod.create(kubelet, 'v2-systemd-containerd');
      pods.push(p1);
      const a = await p1.startRole('alpha');
      await eventually(async () => (await daemon.attest(a.hostPid)).found, 10_000, 'alpha mapped');
      const oldMarker = fs.readFileSync(p1.hostPath('content-crew-alpha.json'));
      fs.rmSync(path.join(kubelet, 'pods'), { recursive: true });
      await eventually(async () => (await daemon.pidmap()).length === 0, 10_000, 'mappings dropped with pods/');
      fs.mkdirSync(path.join(kubelet, 'pods'));
      // The same pod path recreated by someone else, with a copy of the old marker:
      // the live process still sees its old (deleted) volume, not this file.
      fs.mkdirSync(p1.emptyDir, { recursive: true });
      fs.writeFileSync(p1.hostPath('content-crew-alpha.json'), oldMarker);
      const p2 = await TestPod.create(kubelet, 'v1-cgroupfs');
      pods.push(p2);
      const b = await p2.startRole('beta');
      await eventually(async () => (await daemon.attest(b.hostPid)).found, 10_000, 'beta (written after recreation) mapped');
      const copy = await eventually(async () => {
        const m = await daemon.marker(p1.hostPath('content-crew-alpha.json'));
        return m && m.reason !== 'new' ? m : undefined;
      }, 10_000, 'copied marker evaluated');
      expect(copy.state).toBe('pending');
      expect(copy.reason).toMatch(/sees a different file at the marker path|not visible/);
      await waitResyncs(daemon, 2);
      await assertMapTruthful(daemon, new Map([[b.hostPid, 'beta']]));
      expect((await daemon.attest(a.hostPid)).selector_values).toEqual([]);
    } finally {
      await daemon.cleanup();
      for (const p of pods) await p.destroy();
    }
  });

  for (const variant of ['a regular file where its parent should be', 'a read-only bind mount'] as const) {
    it(`state_dir not writable (${variant}): a clear error in the logs, attestation unaffected`, async () => {
      const work = tmp('hexr-hard-state-');
      dirs.push(work);
      const ctx = path.join(work, 'ctx');
      fs.mkdirSync(ctx);
      let stateDir: string;
      let mounted = false;
      if (variant === 'a regular file where its parent should be') {
        fs.writeFileSync(path.join(work, 'file'), 'not a directory');
        stateDir = path.join(work, 'file', 'state');
      } else {
        stateDir = path.join(work, 'ro-state');
        fs.mkdirSync(stateDir);
        execFileSync('mount', ['--bind', stateDir, stateDir]);
        mounted = true;
        execFileSync('mount', ['-o', 'remount,ro,bind', stateDir]);
      }
      const r = new HostRoles(ctx);
      roles.push(r);
      const daemon = new DaemonProcess(
        { layout: 'flat', root: ctx, stateDir, extraArgs: ['--container-context-dir', ctx, '--liveness-interval', '200ms'] },
        path.join(work, 'd'),
      );
      fs.mkdirSync(daemon.workDir, { recursive: true });
      try {
        await daemon.start();
        const pid = await r.start('writer');
        await eventually(async () => (await daemon.attest(pid)).found, 10_000, 'mapped despite state_dir');
        expect(roleOf((await daemon.attest(pid)).selector_values)).toBe('writer');
        const errors = daemon.stderrLines.filter(l => l.includes('"@level":"error"'));
        const pattern = variant === 'a regular file where its parent should be' ? /state_dir cannot be created|enriched context: write .* failed/ : /enriched context: write .* failed/;
        await eventually(() => daemon.stderrLines.some(l => pattern.test(l)), 5000, 'state_dir error logged');
        expect(errors.length + daemon.stderrLines.filter(l => pattern.test(l)).length).toBeGreaterThan(0);
        const line = JSON.parse(daemon.stderrLines.find(l => pattern.test(l))!) as Record<string, unknown>;
        expect(line['@level']).toBe('error');
        expect(JSON.stringify(line)).toMatch(variant === 'a read-only bind mount' ? /EROFS/ : /ENOTDIR|EEXIST/);
        // Exit and PID checks still work without state files.
        await r.kill(pid);
        await eventually(async () => !(await daemon.attest(pid)).found, 5000, 'evicted');
      } finally {
        await daemon.cleanup();
        if (mounted) execFileSync('umount', [stateDir]);
      }
    });
  }
});

/** Forks `sleep` on the host until it gets host PID `pid`. */
/**
 * A process in `pod` with container PID `cpid` (the next fork takes ns_last_pid + 1;
 * churn in the pod can race us for it, so this retries). Throws if reuse cannot be forced:
 * a test that did not reuse the PID would prove nothing.
 */
async function reuseContainerPid(pod: TestPod, cpid: number): Promise<{ sh: number; reuser: number }> {
  for (let attempt = 0; attempt < 30; attempt++) {
    const sh = await pod.exec(`echo ${cpid - 1} > /proc/sys/kernel/ns_last_pid; sleep 100000 & wait`);
    const reuser = await eventually(() => {
      const kids = fs.readFileSync(`/proc/${sh.hostPid}/task/${sh.hostPid}/children`, 'utf8').trim();
      return kids ? Number(kids.split(/\s+/)[0]) : undefined;
    }, 5000, 'container-level reuser');
    const ns = /NSpid:\s+(.*)/.exec(fs.readFileSync(`/proc/${reuser}/status`, 'utf8'))![1]!.trim().split(/\s+/);
    if (Number(ns[ns.length - 1]) === cpid) return { sh: sh.hostPid, reuser };
    process.kill(reuser, 'SIGKILL');
    process.kill(sh.hostPid, 'SIGKILL');
  }
  throw new Error(`could not make a process reuse container PID ${cpid}`);
}

describe.skipIf(skip)('faults: PID reuse at host and container level under churn', () => {
  it('never hands a dead role process\'s role to the process that reuses its host PID or its container PID', async () => {
    const kubelet = makeKubeletRoot();
    // Liveness checks slowed: the Attest path's own start-time check is what guards reuse here.
    const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--liveness-interval', '10m', '--resync-interval', '1s', '--pending-retry', '200ms'] });
    await daemon.start();
    const pod = await TestPod.create(kubelet, 'v2-systemd-containerd');
    const extra: ChildProcess[] = [];
    let churning = true;
    let paused = false;
    // Churn: unrelated short-lived processes on the host and inside the pod.
    const churn = (async () => {
      while (churning) {
        if (paused) {
          await new Promise(r => setTimeout(r, 10));
          continue;
        }
        await Promise.all([
          new Promise(r => spawn('true', { stdio: 'ignore' }).once('exit', r)),
          pod.exec('exit 0').then(p => new Promise(r => (p.handle.exitCode !== null ? r(0) : p.handle.once('exit', r)))).catch(() => undefined),
        ]);
      }
    })();
    let wrong = 0;
    let checks = 0;
    try {
      for (let cycle = 0; cycle < 4; cycle++) {
        const role = `worker-${cycle}`;
        const p = await pod.startRole(role);
        await eventually(async () => (await daemon.attest(p.hostPid)).found, 10_000, `${role} mapped`);
        expect(roleOf((await daemon.attest(p.hostPid)).selector_values)).toBe(role);
        const deadStart = startTicks(p.hostPid);
        await pod.kill(p);
        // The churn's forks (inside the pod too) would race us for the PIDs.
        paused = true;
        // Container level: the next process in the pod takes the dead writer's container PID.
        const { sh, reuser } = await reuseContainerPid(pod, p.cpid);
        // Host level: a host process takes the dead writer's host PID. Another
        // test file's process may have taken it first and kept it: then that
        // one is the reuser, as good for this check.
        const hostReuser = await spawnWithPid(p.hostPid).catch(() => undefined);
        paused = false;
        if (hostReuser) extra.push(hostReuser);
        const reuserStart = startTicks(p.hostPid);
        expect(reuserStart, `host PID ${p.hostPid} reused`).toBeDefined();
        expect(reuserStart).not.toBe(deadStart);
        for (let i = 0; i < 20; i++) {
          for (const pid of [reuser, p.hostPid]) {
            checks++;
            if ((await daemon.attest(pid)).selector_values.length !== 0) wrong++;
          }
        }
        await waitResyncs(daemon);
        for (const pid of [reuser, p.hostPid]) {
          checks++;
          if ((await daemon.attest(pid)).selector_values.length !== 0) wrong++;
        }
        expect((await daemon.marker(pod.hostPath(`content-crew-${role}.json`)))?.state).toBe('stale');
        hostReuser?.kill('SIGKILL');
        process.kill(sh, 'SIGKILL');
        process.kill(reuser, 'SIGKILL');
      }
      expect(wrong, `${wrong} of ${checks} answers gave a role to a reusing process`).toBe(0);
      await assertMapTruthful(daemon, new Map());
    } finally {
      churning = false;
      await churn;
      for (const c of extra) if (c.pid !== undefined && alive(c.pid)) c.kill('SIGKILL');
      await daemon.cleanup();
      await pod.destroy();
      fs.rmSync(kubelet, { recursive: true, force: true });
    }
  });
});

interface HostEvent {
  event: string;
  /** When the line reached us (ms epoch). */
  at: number;
  pid?: number;
  selector_values?: string[];
  error?: { code: string; message: string };
  [k: string]: unknown;
}

describe.skipIf(skipGo)('faults: daemon SIGKILLed under a serving plugin, then the plugin\'s host SIGKILLed (Go host)', () => {
  let host: BuiltHost;
  beforeAll(async () => {
    await ensureBuilt();
    host = await buildHost();
  });
  afterAll(() => host?.cleanup());

  it('UNAVAILABLE while the daemon is down, right answers after its restart, never a wrong one; the plugin dies with its host and leaves no socket', async () => {
    const kubelet = makeKubeletRoot();
    const sockDir = tmp('hexr-hard-psock-');
    const daemon = new DaemonProcess({ layout: 'kubelet', root: kubelet, extraArgs: ['--liveness-interval', '200ms'] });
    await daemon.start();
    const pod = await TestPod.create(kubelet, 'v2-systemd-containerd');
    let hostProc: ChildProcess | undefined;
    try {
      const a = await pod.startRole('researcher');
      const b = await pod.startRole('writer');
      await eventually(async () => (await daemon.pidmap()).length === 2, 10_000, 'mapped');
      const truth = new Map<number, string | undefined>([[a.hostPid, 'researcher'], [b.hostPid, 'writer'], [pod.pid1, undefined]]);
      const cfg = path.join(sockDir, 'plugin.conf');
      fs.writeFileSync(cfg, `daemon_socket = "${daemon.socket}"\nattest_timeout = "2s"\n`);
      // TMPDIR too: the host's own broker socket (go-plugin: /tmp/plugin<N>) is left behind by a SIGKILLed host; keep it in our temp dir.
      const env = childEnv({ PLUGIN_UNIX_SOCKET_DIR: sockDir, TMPDIR: sockDir, WorkloadAttestor: undefined });
      hostProc = spawn(
        host.bin,
        ['-config', cfg, '-pids', [...truth.keys()].join(','), '-concurrency', '4', '-repeat', '100000000', '-log-level', 'error', '--', process.execPath, MAIN_JS, 'plugin'],
        { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const events: HostEvent[] = [];
      let buf = '';
      hostProc.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.startsWith('{')) events.push({ ...(JSON.parse(line) as HostEvent), at: Date.now() });
        }
      });
      hostProc.stderr!.resume();
      const loaded = await eventually(() => events.find(e => e.event === 'loaded'), 20_000, 'plugin loaded');
      const pluginPid = loaded['pid'] as number;
      const attests = (): HostEvent[] => events.filter(e => e.event === 'attest');
      await eventually(() => attests().length >= 300, 20_000, 'answers before the crash');
      const beforeCrash = attests().length;

      await daemon.kill9();
      await sleep(1500);
      const downFrom = beforeCrash;
      const downTo = attests().length;
      await daemon.start();
      const restartedAt = attests().length;
      const restartedMs = Date.now();
      // The plugin's channel reconnects with a backoff of at most 1 s (plugin/daemon-client.ts).
      // Errors are for the downtime only: none from 1 s after the first right
      // answer on (calls still in flight then may end in an error).
      const firstOk = await eventually(() => attests().slice(restartedAt).find(e => !e.error), 30_000, 'an answer after the restart');
      const recoveryMs = firstOk.at - restartedMs;
      expect(recoveryMs).toBeLessThan(10_000);
      const settledMs = firstOk.at + 1000;
      await eventually(() => attests().filter(e => e.at > settledMs).length >= 2000, 30_000, 'answers after the restart');

      // The plugin's host disappears: SIGKILL. The plugin must go too, and leave no socket file.
      const hostGone = new Promise(r => hostProc!.once('exit', r));
      process.kill(hostProc.pid!, 'SIGKILL');
      await hostGone;
      await eventually(() => exited(pluginPid), 30_000, 'plugin exited with its host');
      expect(fs.readdirSync(sockDir).filter(f => f.endsWith('.sock'))).toEqual([]);

      const all = attests();
      let unavailable = 0;
      let wrongs = 0;
      const otherErrors: string[] = [];
      for (const [i, e] of all.entries()) {
        if (e.error) {
          if (e.error.code === 'Unavailable') unavailable++;
          else otherErrors.push(`${e.error.code}: ${e.error.message}`);
          continue;
        }
        const want = truth.get(e.pid!);
        const got = roleOf(e.selector_values ?? []);
        if (got !== want) {
          wrongs++;
          if (wrongs < 5) console.log(`wrong answer #${i} for ${e.pid}: ${got ?? 'none'}, truth ${want ?? 'none'}`);
        }
      }
      const errorsOutsideDowntime = all.slice(0, downFrom).filter(e => e.error).length + all.filter(e => e.at > settledMs && e.error).length;
      console.log(
        `daemon crash under the plugin: ${all.length} answers, ${unavailable} UNAVAILABLE (${downTo - downFrom} calls while down), ` +
          `${otherErrors.length} other errors, ${wrongs} wrong; plugin answering again ${recoveryMs} ms after the daemon restarted`,
      );
      expect(wrongs).toBe(0);
      expect(otherErrors).toEqual([]);
      expect(unavailable).toBeGreaterThan(0);
      expect(errorsOutsideDowntime).toBe(0);
      // Right answers after the restart, for every PID.
      for (const pid of truth.keys()) expect(all.some(e => e.at > settledMs && e.pid === pid && !e.error)).toBe(true);
    } finally {
      if (hostProc?.pid !== undefined && hostProc.exitCode === null && hostProc.signalCode === null) process.kill(hostProc.pid, 'SIGKILL');
      await daemon.cleanup();
      await pod.destroy();
      fs.rmSync(kubelet, { recursive: true, force: true });
      fs.rmSync(sockDir, { recursive: true, force: true });
    }
  });
});

/**
 * A FIFO for a plugin's stdout that is full before the plugin starts: its
 * handshake line cannot go through until we read (a host slow to read).
 */
class FullPipe {
  readonly path: string;
  private readonly fd: number;
  private fill = 0;
  constructor(dir: string) {
    this.path = path.join(dir, 'stdout.fifo');
    execFileSync('mkfifo', [this.path]);
    // Read and write, non-blocking: the plugin's open for writing never waits, and we can fill it.
    this.fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const chunk = Buffer.alloc(4096);
    for (;;) {
      try {
        this.fill += fs.writeSync(this.fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw err;
      }
    }
  }

  /** Reads out our filling and then the first line the plugin wrote. */
  async firstLine(): Promise<string> {
    const buf = Buffer.alloc(1 << 17);
    let skip = this.fill;
    let text = '';
    const end = Date.now() + 10_000;
    while (!text.includes('\n')) {
      if (Date.now() > end) throw new Error(`no line from the plugin in 10 s (${JSON.stringify(text)})`);
      try {
        const n = fs.readSync(this.fd, buf);
        const from = Math.min(skip, n);
        skip -= from;
        text += buf.subarray(from, n).toString();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await sleep(20);
      }
    }
    return text.slice(0, text.indexOf('\n'));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

describe.skipIf(skip)('faults: a plugin whose host dies without taking it along (no Pdeathsig)', () => {
  const dirs: string[] = [];
  const hosts: ChildProcess[] = [];
  const plugins: { pid: number; ticks: number | undefined }[] = [];
  const scratch = (prefix: string): string => {
    dirs.push(tmp(prefix));
    return dirs.at(-1)!;
  };
  afterAll(() => {
    for (const h of hosts) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
    // Only our own plugins: a PID freed since may belong to another test's process now.
    for (const { pid, ticks } of plugins) if (ticks !== undefined && !exited(pid, ticks)) process.kill(pid, 'SIGKILL');
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /**
   * sh is the "host": it stays the plugin's parent until we SIGKILL it, and
   * exits with the plugin's status otherwise. The plugin's stdout goes to
   * `o.stdout` (a path) or to sh's; its log to plugin.log beside its socket.
   */
  async function launch(o: { stdout?: string; nodeArgs?: string[] } = {}): Promise<{ sh: ChildProcess; sockDir: string; pluginPid: number; ticks: number | undefined; log: () => string }> {
    await ensureBuilt();
    const sockDir = scratch('hexr-hard-orphan-');
    const logFile = path.join(sockDir, 'plugin.log');
    const redirect = `${o.stdout === undefined ? '' : ` > ${shq(o.stdout)}`} 2> ${shq(logFile)}`;
    const node = [process.execPath, ...(o.nodeArgs ?? []), MAIN_JS].map(shq).join(' ');
    const sh = spawn('sh', ['-c', `${node} plugin${redirect} & wait $!`], { env: childEnv({ ...PLUGIN_ENV, PLUGIN_UNIX_SOCKET_DIR: sockDir }), stdio: ['ignore', 'pipe', 'ignore'] });
    hosts.push(sh);
    const pluginPid = await eventually(() => childrenOf(sh.pid!).find(c => fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').includes(MAIN_JS)), 15_000, 'plugin started');
    const ticks = startTicks(pluginPid);
    plugins.push({ pid: pluginPid, ticks });
    return { sh, sockDir, pluginPid, ticks, log: () => fs.readFileSync(logFile, 'utf8') };
  }
  const socketOf = (sockDir: string, pid: number): string | undefined => fs.readdirSync(sockDir).find(f => f.startsWith(`plugin-${pid}-`));

  it('notices that it was re-parented, stops and removes its socket', async () => {
    const { sh, pluginPid, ticks } = await launch();
    let out = '';
    sh.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const line = await eventually(() => (out.includes('\n') ? out.slice(0, out.indexOf('\n')) : undefined), 15_000, 'handshake');
    const socket = socketFromHandshake(line);
    expect(path.basename(socket)).toMatch(new RegExp(`^plugin-${pluginPid}-`));
    expect(fs.existsSync(socket)).toBe(true);
    process.kill(sh.pid!, 'SIGKILL');
    // Re-parented to PID 1, it may linger as a zombie until reaped: exited all the same.
    await eventually(() => exited(pluginPid, ticks), 15_000, 'orphaned plugin stopped');
    expect(fs.existsSync(socket)).toBe(false);
  });

  // The parent must be taken before the handshake: a host killed just after
  // reading it used to leave the plugin watching its new parent (PID 1) and
  // serving nobody forever (seen in CI). Here the host dies while the line
  // cannot even be written, which a plugin that takes its parent on or after
  // writing it can never notice.
  it('notices it too when the host dies before reading the handshake (its pipe full), and removes its socket', async () => {
    const pipe = new FullPipe(scratch('hexr-hard-fifo-'));
    try {
      const { sh, sockDir, pluginPid, ticks } = await launch({ stdout: pipe.path });
      const socket = await eventually(() => socketOf(sockDir, pluginPid), 15_000, 'plugin listening');
      await sleep(300); // trying to write its handshake meanwhile
      expect(alive(pluginPid)).toBe(true);
      process.kill(sh.pid!, 'SIGKILL');
      await eventually(() => exited(pluginPid, ticks), 15_000, 'orphaned plugin stopped');
      expect(fs.existsSync(path.join(sockDir, socket))).toBe(false);
    } finally {
      pipe.close();
    }
  });

  // The window before that: the host dies while the plugin still loads gRPC
  // and its protos (here made 1.5 s long by a loader hook). The parent is
  // read before that, first thing.
  it('notices it too when the host dies while the plugin is still loading', async () => {
    const dir = scratch('hexr-hard-slowload-');
    const mark = path.join(dir, 'loading');
    const hook = `export async function load(url, context, next) {
  if (url.endsWith('/goplugin/serve.js')) {
    (await import('node:fs')).writeFileSync(${JSON.stringify(mark)}, '');
    await new Promise(r => setTimeout(r, 1500));
  }
  return next(url, context);
}`;
    const preload = path.join(dir, 'slow-load.mjs');
    fs.writeFileSync(preload, `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});\n`);
    const { sh, sockDir, pluginPid, ticks, log } = await launch({ nodeArgs: ['--import', preload] });
    await eventually(() => fs.existsSync(mark), 15_000, 'plugin loading its gRPC part');
    process.kill(sh.pid!, 'SIGKILL');
    await eventually(() => exited(pluginPid, ticks), 15_000, 'orphaned plugin stopped');
    expect(socketOf(sockDir, pluginPid)).toBeUndefined();
    expect(log()).toContain('host process is gone (parent changed); stopping');
  });

  it('stops at SIGTERM while its handshake waits, exits 0 and removes its socket: a stop, not a failure', async () => {
    const pipe = new FullPipe(scratch('hexr-hard-fifo-'));
    try {
      const { sh, sockDir, pluginPid, log } = await launch({ stdout: pipe.path });
      await eventually(() => socketOf(sockDir, pluginPid), 15_000, 'plugin listening');
      const status = new Promise<number | null>(resolve => sh.once('exit', code => resolve(code)));
      process.kill(pluginPid, 'SIGTERM');
      expect(await status).toBe(0); // sh's `wait $!`: the plugin's own exit status
      expect(socketOf(sockDir, pluginPid)).toBeUndefined();
      const lines = log().trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>);
      expect(lines.filter(l => l['@level'] === 'error')).toEqual([]);
      expect(lines.map(l => l['@message'])).toEqual(expect.arrayContaining(['SIGTERM: stopping', 'plugin stopped']));
      expect(lines.map(l => l['@message'])).not.toContain('plugin serving');
    } finally {
      pipe.close();
    }
  });

  it('waits for a host slow to read its handshake (Node makes the pipe non-blocking), then writes it whole and serves', async () => {
    const pipe = new FullPipe(scratch('hexr-hard-fifo-'));
    try {
      const { sh, sockDir, pluginPid, ticks } = await launch({ stdout: pipe.path });
      const socket = await eventually(() => socketOf(sockDir, pluginPid), 15_000, 'plugin listening');
      await sleep(300);
      expect(socketFromHandshake(await pipe.firstLine())).toBe(path.join(sockDir, socket));
      // Serving: still there, and stops when its host goes.
      await sleep(600);
      expect(alive(pluginPid)).toBe(true);
      process.kill(sh.pid!, 'SIGKILL');
      await eventually(() => exited(pluginPid, ticks), 15_000, 'orphaned plugin stopped');
    } finally {
      pipe.close();
    }
  });
});
