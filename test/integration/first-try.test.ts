// What a newcomer and an SRE hit first, against a real daemon: a flat layout
// with a custom context root, /metrics before anything happened, doctor
// finding the running daemon, run-as telling whether its command got mapped,
// and marker paths that try to break the operator's terminal.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { DaemonProcess, MAIN } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { alive } from '../helpers/pod.js';

const exec = promisify(execFile);
const skip = skipNote('integration (first try: flat layout, metrics, doctor, run-as)', ROOT_SKIP);

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [MAIN, ...args], { timeout: 30_000, env: { PATH: process.env['PATH'] ?? '', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs `run-as`: its stderr so far, and its exit code and stderr once it exits. */
function runAs(args: string[], children: ChildProcess[]): { child: ChildProcess; stderr: () => string; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [MAIN, 'run-as', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string }>(resolve => child.once('close', code => resolve({ code, stderr })));
  return { child, stderr: () => stderr, done };
}

describe.skipIf(skip)('a daemon in the flat layout with a custom --context-root (no --container-context-dir)', () => {
  let ctx: string;
  let daemon: DaemonProcess;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-first-'));
    daemon = new DaemonProcess({ layout: 'flat', root: ctx, extraArgs: ['--metrics-addr', '127.0.0.1:0'] });
    await daemon.start();
  }, 120_000);

  afterAll(async () => {
    for (const c of children) if (c.pid && alive(c.pid)) c.kill('SIGKILL');
    await daemon?.cleanup();
    fs.rmSync(ctx, { recursive: true, force: true });
  });

  it('serves every labelled counter at 0 before anything happened', async () => {
    const text = await daemon.metrics();
    for (const series of [
      'hexr_attest_calls_total{result="found"} 0',
      'hexr_attest_calls_total{result="not_found"} 0',
      'hexr_attest_calls_total{result="evicted"} 0',
      'hexr_evictions_total{cause="exited"} 0',
      'hexr_evictions_total{cause="start_time_changed"} 0',
      'hexr_evictions_total{cause="marker_removed"} 0',
      'hexr_evictions_total{cause="marker_changed"} 0',
      'hexr_marker_rejections_total{reason="invalid-json"} 0',
      'hexr_marker_rejections_total{reason="symlink"} 0',
      'hexr_marker_rejections_total{reason="hard-link"} 0',
      'hexr_markers{state="conflict"} 0',
      'hexr_history_write_errors_total 0',
    ]) {
      expect(text.split('\n'), series).toContain(series);
    }
  });

  it('maps a marker: the context root is where a host process sees its own marker', async () => {
    const sleeper = spawn('sleep', ['100000'], { stdio: 'ignore' });
    children.push(sleeper);
    fs.writeFileSync(path.join(ctx, 'crew-lead.json'), JSON.stringify({ agent_name: 'crew', tenant: 't', process_role: 'lead', container_pid: sleeper.pid }));
    const m = await eventually(async () => (await daemon.pidmap()).find(e => e.host_pid === sleeper.pid), 10_000, 'mapped');
    expect(m.marker_path).toBe(path.join(ctx, 'crew-lead.json'));
    sleeper.kill('SIGKILL');
  });

  it('run-as says on stderr when the daemon mapped its command', async () => {
    const { child, stderr, done } = runAs(['--agent', 'crew', '--tenant', 't', '--role', 'mapped-one', '--context-dir', ctx, '--addr', daemon.debugAddr, '--', 'sleep', '100000'], children);
    const line = await eventually(() => /PID (\d+) mapped by the daemon at \S+ \(host PID (\d+), agent\/t\/crew\/mapped-one\)/.exec(stderr()) ?? undefined, 15_000, 'mapped line');
    expect(line[1]).toBe(line[2]);
    child.kill('SIGTERM');
    expect((await done).code).toBe(143);
  });

  it('run-as warns, with the daemon\'s view, when the daemon does not see its marker; the command still runs', async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-elsewhere-'));
    try {
      const { done } = runAs(['--agent', 'crew', '--tenant', 't', '--role', 'lost', '--context-dir', elsewhere, '--addr', daemon.debugAddr, '--wait', '1s', '--', 'sh', '-c', 'sleep 3; exit 7'], children);
      const r = await done;
      expect(r.code).toBe(7);
      expect(r.stderr).toContain(`warning: the daemon at ${daemon.debugAddr} does not see ${path.join(elsewhere, 'crew-lost.json')} after 1s: is ${elsewhere} its context root (--context-dir)?`);
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('doctor, given only the daemon\'s address, checks that daemon\'s configuration (no WARN about a socket it does not use)', async () => {
    const r = await cli(['doctor', '--addr', daemon.debugAddr]);
    expect(r.stdout).toMatch(new RegExp(`^PASS\\s+daemon\\s+running at ${daemon.debugAddr.replace(/\./g, '\\.')}; checking its configuration: flat layout, socket ${daemon.socket}, state_dir ${daemon.stateDir}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^PASS\\s+local API socket\\s+${daemon.socket} accepts connections`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^PASS\\s+context root\\s+flat layout at ${ctx}$`, 'm'));
    expect(r.stdout).not.toMatch(/^WARN\s+local API socket/m);
  });

  it('rejects a marker named with control characters, and shows its path escaped wherever it appears', async () => {
    const sleeper = spawn('sleep', ['100000'], { stdio: 'ignore' });
    children.push(sleeper);
    const evil = 'x\n666     0  fake row\u001b[2J\u202egnp.json';
    fs.writeFileSync(path.join(ctx, evil), JSON.stringify({ agent_name: 'crew', tenant: 't', process_role: 'evil', container_pid: sleeper.pid }));
    const m = await eventually(async () => (await daemon.markers()).find(x => x.path === path.join(ctx, evil) && x.state === 'rejected'), 10_000, 'rejected');
    expect(m.reason).toBe('bad-name: file name contains control or formatting character U+000A');
    expect((await daemon.pidmap()).some(e => e.host_pid === sleeper.pid)).toBe(false);
    // `wait` lists the markers that are not mapped: the path is there, escaped, on one line.
    const r = await cli(['wait', '--addr', daemon.debugAddr, '--role', 'evil', '--timeout', '300ms']);
    expect(r.code).toBe(1);
    const line = r.stderr.split('\n').find(l => l.includes('fake row'));
    expect(line).toContain(`${ctx}/x\\n666     0  fake row\\x1b[2J\\u202egnp.json: rejected (bad-name`);
    expect(r.stderr).not.toContain("\u001b");
    expect(r.stderr).not.toContain("\u202e");
    expect(r.stderr.split('\n').filter(l => l.startsWith('666'))).toEqual([]);
    sleeper.kill('SIGKILL');
    fs.rmSync(path.join(ctx, evil));
  });
});

describe.skipIf(skip)('with no daemon running', () => {
  it('run-as warns on stderr and still runs the command, passing its exit status on', async () => {
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-nodaemon-'));
    const children: ChildProcess[] = [];
    try {
      const { done } = runAs(['--agent', 'crew', '--tenant', 't', '--role', 'alone', '--context-dir', ctx, '--addr', '127.0.0.1:1', '--wait', '500ms', '--', 'sh', '-c', 'sleep 2; exit 3'], children);
      const r = await done;
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(
        `hexr-pid-mapper run-as: warning: no daemon answered at 127.0.0.1:1 within 0.5s; PID ${/as PID (\d+)/.exec(r.stderr)?.[1]} runs without an identity until a daemon maps ${path.join(ctx, 'crew-alone.json')}`,
      );
      expect(fs.existsSync(path.join(ctx, 'crew-alone.json'))).toBe(false); // removed when the command exited
    } finally {
      for (const c of children) if (c.pid && alive(c.pid)) c.kill('SIGKILL');
      fs.rmSync(ctx, { recursive: true, force: true });
    }
  });

  it('doctor says which daemon it could not reach and exactly which flags to pass', async () => {
    const r = await cli(['doctor', '--addr', '127.0.0.1:1']);
    expect(r.stdout).toMatch(
      /^WARN\s+daemon\s+no daemon answered at 127\.0\.0\.1:1; checking the built-in defaults; to check another configuration pass its daemon flags \(`npm start` runs --layout flat\), or --addr HOST:PORT of a running daemon: kubelet layout, socket \/run\/hexr\/pid-mapper\.sock, state_dir \/run\/hexr\/pid-map$/m,
    );
  });
});
