// The README's quick start, for real: the daemon in the flat layout, two role
// processes started with `run-as`, the map seen through `pidmap`; a missed
// inotify event healed by the resync; clear errors for bad configuration.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDaemonConfig } from '../../src/daemon/config.js';
import { runDaemon, type RunningDaemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { DaemonProcess, MAIN } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { alive } from '../helpers/pod.js';

const run = promisify(execFile);
const skip = skipNote('integration (flat layout, CLI)', ROOT_SKIP);

describe('daemon configuration errors', () => {
  it('exits 2 and lists every problem at once', async () => {
    const err = await run(process.execPath, [MAIN, 'daemon', '--layout', 'sideways', '--resync-interval', 'soon', '--socket', 'relative.sock', '--debug-addr', 'nope'], {
      timeout: 10_000,
    }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    const stderr = (err as { stderr: string }).stderr;
    expect(stderr).toContain('layout: "sideways" must be "flat" or "kubelet"');
    expect(stderr).toContain('resync_interval: "soon"');
    expect(stderr).toContain('socket: "relative.sock" must be an absolute path');
    expect(stderr).toContain('debug_addr: "nope" is not host:port');
  });

  it('rejects an unknown flag with a readable message', async () => {
    const err = await run(process.execPath, [MAIN, 'daemon', '--no-such-flag', 'x'], { timeout: 10_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/no-such-flag/);
  });
});

describe.skipIf(skip)('flat layout quick start', () => {
  let ctx: string;
  let daemon: DaemonProcess;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-flat-'));
    daemon = new DaemonProcess({ layout: 'flat', root: ctx, extraArgs: ['--container-context-dir', ctx] });
    await daemon.start();
  });

  afterAll(async () => {
    for (const c of children) if (c.pid && alive(c.pid)) c.kill('SIGTERM');
    await daemon?.cleanup();
    fs.rmSync(ctx, { recursive: true, force: true });
  });

  it('maps two run-as role processes and shows them in `pidmap`', async () => {
    const start = (role: string): ChildProcess => {
      const c = spawn(process.execPath, [MAIN, 'run-as', '--agent', 'content-crew', '--tenant', 'acme', '--role', role, '--context-dir', ctx, '--', 'sleep', '100000'], {
        stdio: 'ignore',
      });
      children.push(c);
      return c;
    };
    const r1 = start('researcher');
    const r2 = start('writer');
    const pidOf = (runAs: ChildProcess): number =>
      Number(fs.readFileSync(`/proc/${runAs.pid}/task/${runAs.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    await eventually(() => pidOf(r1) > 0 && pidOf(r2) > 0, 10_000, 'run-as children');
    const [p1, p2] = [pidOf(r1), pidOf(r2)];
    await eventually(async () => (await daemon.pidmap()).length === 2, 10_000, 'two mappings');
    const { stdout } = await run(process.execPath, [MAIN, 'pidmap', '--addr', daemon.debugAddr], { timeout: 10_000 });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^HOST PID\s+CPID\s+TENANT\s+AGENT\s+ROLE/);
    expect(lines.find(l => l.startsWith(`${p1} `))).toMatch(/acme\s+content-crew\s+researcher/);
    expect(lines.find(l => l.startsWith(`${p2} `))).toMatch(/acme\s+content-crew\s+writer/);
    expect(lines.at(-1)).toMatch(/^2 mapped, map version \d+$/);
    const json = JSON.parse((await run(process.execPath, [MAIN, 'pidmap', '--json', '--addr', daemon.debugAddr, '--role', 'writer'])).stdout);
    expect(json.entries.map((e: { host_pid: number }) => e.host_pid)).toEqual([p2]);

    // run-as passes the exit on and removes its marker; the mapping goes with it.
    r2.kill('SIGTERM');
    await eventually(() => !fs.existsSync(path.join(ctx, 'content-crew-writer.json')), 10_000, 'marker removed');
    await eventually(async () => (await daemon.pidmap()).length === 1, 10_000, 'mapping removed');
  });

  it('prints a clear error when the daemon cannot be reached', async () => {
    const err = await run(process.execPath, [MAIN, 'pidmap', '--addr', '127.0.0.1:1'], { timeout: 10_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toContain('cannot read http://127.0.0.1:1/debug/pidmap');
  });
});

describe.skipIf(skip)('missed inotify events', () => {
  it('are healed by the periodic resync', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-miss-'));
    const ctx = path.join(dir, 'ctx');
    fs.mkdirSync(ctx);
    const config = loadDaemonConfig(
      ['--layout', 'flat', '--context-root', ctx, '--container-context-dir', ctx, '--state-dir', path.join(dir, 'state'), '--socket', path.join(dir, 's.sock'), '--debug-addr', 'off', '--metrics-addr', 'off', '--resync-interval', '1500ms'],
      {},
    );
    const ac = new AbortController();
    let running: RunningDaemon | undefined;
    const done = runDaemon(config, createLogger({ level: 'error' }), ac.signal, d => (running = d));
    const sleeper = spawn('sleep', ['100000'], { stdio: 'ignore' });
    try {
      await eventually(() => running, 10_000, 'daemon');
      running!.watcher.paused = true; // events from now on are lost, as on an inotify queue overflow
      const marker = { agent_name: 'a', tenant: 't', process_role: 'r', container_pid: sleeper.pid };
      fs.writeFileSync(path.join(ctx, 'a-r.json'), JSON.stringify(marker));
      await new Promise(r => setTimeout(r, 300));
      expect(running!.reconciler.snapshot().get(sleeper.pid!)).toBeUndefined(); // the event really was missed
      const m = await eventually(() => running!.reconciler.snapshot().get(sleeper.pid!), 5000, 'healed by resync');
      expect(m.marker.process_role).toBe('r');
    } finally {
      sleeper.kill('SIGKILL');
      ac.abort();
      await done;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('doctor', () => {
  it('checks a SPIRE agent config and fails on a checksum that does not match plugin_cmd', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-doc-'));
    try {
      const cmd = path.join(dir, 'hexr-plugin');
      fs.writeFileSync(cmd, '#!/bin/sh\nexec node /opt/hexr/dist/main.js plugin "$@"\n', { mode: 0o755 });
      const good = (await import('node:crypto')).createHash('sha256').update(fs.readFileSync(cmd)).digest('hex');
      const conf = (sum: string) =>
        `plugins {\n  WorkloadAttestor "hexr" {\n    plugin_cmd = "${cmd}"\n    plugin_checksum = "${sum}"\n    plugin_data {\n      daemon_socket = "/run/hexr/pid-mapper.sock"\n    }\n  }\n}\n`;
      fs.writeFileSync(path.join(dir, 'good.conf'), conf(good));
      fs.writeFileSync(path.join(dir, 'bad.conf'), conf('0'.repeat(64)));
      const args = (f: string) => [MAIN, 'doctor', '--layout', 'flat', '--context-root', dir, '--socket', path.join(dir, 'none.sock'), '--spire-config', path.join(dir, f)];
      const ok = await run(process.execPath, args('good.conf'), { timeout: 20_000 }).catch((e: { code: number; stdout: string }) => e);
      expect((ok as { stdout: string }).stdout).toMatch(/^PASS\s+SPIRE plugin_checksum\s+matches plugin_cmd$/m);
      expect((ok as { stdout: string }).stdout).toMatch(/^PASS\s+inotify limits/m);
      const bad = await run(process.execPath, args('bad.conf'), { timeout: 20_000 }).catch((e: { code: number; stdout: string }) => e);
      expect((bad as { code: number }).code).toBe(1);
      expect((bad as { stdout: string }).stdout).toMatch(/^FAIL\s+SPIRE plugin_checksum\s+does not match sha256/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('metrics listener', () => {
  it('serves Prometheus metrics on its own port: map size, markers by state, rejections by reason, attest calls', async () => {
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-metrics-'));
    const daemon = new DaemonProcess({ layout: 'flat', root: ctx, extraArgs: ['--container-context-dir', ctx, '--metrics-addr', '127.0.0.1:0'] });
    const sleeper = spawn('sleep', ['100000'], { stdio: 'ignore' });
    try {
      await daemon.start();
      const started = JSON.parse(daemon.stderrLines.find(l => l.includes('"daemon started"'))!) as { metrics_addr: string };
      expect(started.metrics_addr).toMatch(/^127\.0\.0\.1:\d+$/);
      fs.writeFileSync(path.join(ctx, 'a-r.json'), JSON.stringify({ agent_name: 'a', tenant: 't', process_role: 'r', container_pid: sleeper.pid }));
      fs.symlinkSync('/etc/hostname', path.join(ctx, 'evil.json'));
      await eventually(async () => (await daemon.attest(sleeper.pid!)).found, 10_000, 'mapped');
      await daemon.attest(process.pid); // not_found
      const text = await eventually(async () => {
        const res = await fetch(`http://${started.metrics_addr}/metrics`);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
        const t = await res.text();
        return t.includes('hexr_marker_rejections_total{reason="symlink"} 1') ? t : undefined;
      }, 10_000, 'metrics');
      expect(text).toMatch(/^hexr_pidmap_size 1$/m);
      expect(text).toMatch(/^hexr_markers\{state="mapped"\} 1$/m);
      expect(text).toMatch(/^hexr_markers\{state="rejected"\} 1$/m);
      expect(text).toMatch(/^hexr_attest_calls_total\{result="found"\} [1-9]\d*$/m);
      expect(text).toMatch(/^hexr_attest_calls_total\{result="not_found"\} [1-9]\d*$/m);
      expect(text).toMatch(/^hexr_resync_duration_seconds_count [1-9]\d*$/m);
      expect(text).toContain('# TYPE hexr_attest_duration_seconds histogram');
      expect((await fetch(`http://${started.metrics_addr}/debug/pidmap`)).status).toBe(404); // debug data stays off this port
    } finally {
      sleeper.kill('SIGKILL');
      await daemon.cleanup();
      fs.rmSync(ctx, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('local API socket permissions', () => {
  const tryConnect = (socket: string, gid: number): Promise<string> =>
    new Promise(resolve => {
      const c = spawn(
        process.execPath,
        ['-e', `require('net').connect(${JSON.stringify(socket)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', e => { console.log(e.code); process.exit(0); })`],
        { uid: 65534, gid, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.once('exit', () => resolve(out.trim()));
    });

  it('is root-only (0600) by default, and usable by members of socket_group (0660) when set', async () => {
    for (const [args, mode, member, outsider] of [
      [[], 0o600, 'EACCES', 'EACCES'],
      [['--socket-group', '4321'], 0o660, 'connected', 'EACCES'],
    ] as const) {
      const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-sock-'));
      const daemon = new DaemonProcess({ layout: 'flat', root: ctx, extraArgs: ['--container-context-dir', ctx, ...args] });
      fs.chmodSync(daemon.workDir, 0o711); // let the unprivileged client reach the socket itself
      try {
        await daemon.start();
        const st = fs.statSync(daemon.socket);
        expect(st.mode & 0o777).toBe(mode);
        if (args.length > 0) expect(st.gid).toBe(4321);
        expect(await tryConnect(daemon.socket, 4321)).toBe(member);
        expect(await tryConnect(daemon.socket, 65534)).toBe(outsider);
      } finally {
        await daemon.cleanup();
        fs.rmSync(ctx, { recursive: true, force: true });
      }
    }
  });
});
