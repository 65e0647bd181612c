// Identity history with a real daemon: `hexr-pid-mapper history` answers
// "which process held role X at 14:03?" across a daemon restart and while the
// daemon is down, keeps pod-controlled marker paths from breaking its table,
// and a full disk (a real 64 KiB tmpfs) is counted and logged once, never fatal.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHistory } from '../../src/daemon/history-files.js';
import { ensureBuilt } from '../helpers/build.js';
import { DaemonProcess, MAIN } from '../helpers/daemon.js';
import { ROOT_SKIP, eventually, skipNote } from '../helpers/env.js';
import { alive } from '../helpers/pod.js';

const exec = promisify(execFile);
const skip = skipNote('integration (identity history)', ROOT_SKIP);

async function history(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [MAIN, 'history', ...args], { timeout: 30_000, env: { PATH: process.env['PATH'] ?? '', TZ: 'UTC', ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Writes a marker the way the SDK does (temp file + rename). */
function claim(ctx: string, file: string, role: string, pid: number): void {
  const tmp = path.join(ctx, `.${file}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify({ agent_name: 'crew', tenant: 'acme', process_role: role, container_pid: pid }));
  fs.renameSync(tmp, path.join(ctx, file));
}

const iso = (ms: number): string => new Date(ms).toISOString();
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

beforeAll(async () => {
  await ensureBuilt();
}, 120_000);

describe.skipIf(skip)('history of a role across a daemon restart', () => {
  let base: string;
  let ctx: string;
  let stateDir: string;
  let daemon: DaemonProcess;
  const procs: ChildProcess[] = [];
  const sleeper = (): number => {
    const c = spawn('sleep', ['100000'], { stdio: 'ignore' });
    procs.push(c);
    return c.pid!;
  };

  beforeAll(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-hist-'));
    ctx = path.join(base, 'ctx');
    stateDir = path.join(base, 'state');
    fs.mkdirSync(ctx);
    daemon = new DaemonProcess({ layout: 'flat', root: ctx, stateDir, extraArgs: ['--liveness-interval', '100ms'] });
  });

  afterAll(async () => {
    for (const c of procs) if (c.pid && alive(c.pid)) c.kill('SIGKILL');
    await daemon.cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('answers which process held the role at a time, while the daemon runs again and while it is down', async () => {
    await daemon.start();
    const mapped = (pid: number) => eventually(async () => (await daemon.pidmap()).some(e => e.host_pid === pid), 10_000, `PID ${pid} mapped`);

    // The first writer holds the role, then exits.
    const w1 = sleeper();
    claim(ctx, 'crew-writer.json', 'writer', w1);
    await mapped(w1);
    const heldByW1 = Date.now(); // granted before this...
    await sleep(100);
    process.kill(w1, 'SIGKILL'); // ...removed after this
    const killed = Date.now();
    await eventually(async () => !(await daemon.pidmap()).some(e => e.host_pid === w1), 10_000, 'w1 removed');

    // The second writer rewrites the marker and takes the role.
    const w2 = sleeper();
    claim(ctx, 'crew-writer.json', 'writer', w2);
    await mapped(w2);
    const heldByW2 = Date.now();

    // Restart: w2 keeps the role.
    expect(await daemon.stop()).toBe(0);
    await sleep(200);
    const whileDown = Date.now() - 100;
    await daemon.start();
    await mapped(w2);

    const q1 = iso(heldByW1 + (killed - heldByW1) / 2); // surely held by w1

    // The CLI finds state_dir by asking the running daemon.
    const r1 = await history(['--addr', daemon.debugAddr, '--role', 'writer', '--at', q1]);
    expect(r1.code).toBe(0);
    const rows = r1.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^TENANT\s+AGENT\s+ROLE\s+HOST PID\s+START\s+CPID\s+POD\s+FROM\s+UNTIL\s+ENDED BY\s+MARKER$/);
    expect(rows[1]).toMatch(new RegExp(`^acme\\s+crew\\s+writer\\s+${w1}\\s+\\d+\\s+${w1}\\s+-\\s+\\S+ \\S+\\s+\\S+ \\S+\\s+exited\\s+${path.join(ctx, 'crew-writer.json')}$`));
    expect(rows.at(-1)).toMatch(/^1 process held a matching role at /);

    const r2 = await history(['--state-dir', stateDir, '--role', 'writer', '--at', iso(heldByW2), '--json']);
    const held = r2.stdout.trim().split('\n').map(l => JSON.parse(l) as { host_pid: number; until: string | null; ended_by: string | null });
    expect(held.map(h => [h.host_pid, h.ended_by])).toEqual([[w2, 'daemon_stop']]);
    const now = await history(['--state-dir', stateDir, '--role', 'writer', '--at', iso(Date.now()), '--json']);
    expect(now.stdout.trim().split('\n').map(l => (JSON.parse(l) as { host_pid: number; until: null }).until)).toEqual([null]);

    const down = await history(['--state-dir', stateDir, '--role', 'writer', '--at', iso(whileDown)]);
    expect(down.stdout).toMatch(/^no process held a matching role at \S+ \S+; the daemon was stopped at \S+ \S+ until \S+ \S+ /m);

    // The daemon is down now: the files alone answer (state_dir from HEXR_STATE_DIR).
    expect(await daemon.stop()).toBe(0);
    const r3 = await history(['--role', 'writer', '--at', q1, '--json', '--addr', '127.0.0.1:1'], { HEXR_STATE_DIR: stateDir });
    expect(r3.stdout.trim().split('\n').map(l => (JSON.parse(l) as { host_pid: number }).host_pid)).toEqual([w1]);

    // The event list: what happened to the role, in order.
    const events = (await history(['--state-dir', stateDir, '--role', 'writer', '--json'])).stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>);
    expect(events.map(e => [e['event'], e['host_pid'] ?? null, e['cause'] ?? null])).toEqual([
      ['daemon_start', null, null],
      ['grant', w1, 'mapped'],
      ['removal', w1, 'exited'],
      ['grant', w2, 'mapped'],
      ['daemon_stop', null, null],
      ['daemon_start', null, null],
      ['grant', w2, 'restored'],
      ['daemon_stop', null, null],
    ]);
    const grant = events[1]!;
    expect(grant).toMatchObject({ container_pid: w1, tenant: 'acme', agent_name: 'crew', marker_path: path.join(ctx, 'crew-writer.json'), pod_uid: null });
    expect(grant['marker_inode']).toEqual(expect.any(Number));
    expect(grant['start_time']).toEqual(expect.any(Number));
  });

  it('never records a marker named with control characters (it is rejected), so no row can be forged', async () => {
    await daemon.start();
    const p = sleeper();
    const evil = 'x\n2026-01-01 00:00:00.000  grant  mapped  acme  crew  admin\u001b[2K\u202e.json';
    claim(ctx, evil, 'evil', p);
    await eventually(async () => (await daemon.markers()).some(m => m.path === path.join(ctx, evil) && m.state === 'rejected'), 10_000, 'rejected');
    await daemon.stop();
    const r = await history(['--state-dir', stateDir, '--role', 'evil']);
    expect(r.stdout).not.toContain('admin');
    expect(r.stdout).not.toContain("\u001b");
    expect(r.stdout).not.toContain("\u202e");
    const json = await history(['--state-dir', stateDir, '--role', 'evil', '--json']);
    expect(json.stdout.split('\n').filter(l => l.includes('"grant"'))).toEqual([]);
  });
});

describe.skipIf(skip)('history on a full disk (64 KiB tmpfs as state_dir)', () => {
  it('counts and logs once what it cannot write, keeps attesting, and writes again once there is room', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-full-'));
    const ctx = path.join(base, 'ctx');
    const stateDir = path.join(base, 'state');
    fs.mkdirSync(ctx);
    fs.mkdirSync(stateDir);
    const procs: ChildProcess[] = [];
    let mounted = false;
    const daemon = new DaemonProcess({ layout: 'flat', root: ctx, stateDir, extraArgs: ['--metrics-addr', '127.0.0.1:0'] });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', stateDir]);
      mounted = true;
      const filler = path.join(stateDir, 'filler');
      try {
        fs.writeFileSync(filler, Buffer.alloc(1 << 20));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      await daemon.start();
      const lostEvents = async (): Promise<number> => Number(/^hexr_history_write_errors_total (\d+)$/m.exec(await daemon.metrics())?.[1]);
      const outageLogs = (): number => daemon.stderrLines.filter(l => l.includes('identity history cannot be written')).length;

      for (const role of ['a', 'b']) {
        const c = spawn('sleep', ['100000'], { stdio: 'ignore' });
        procs.push(c);
        claim(ctx, `crew-${role}.json`, role, c.pid!);
        await eventually(async () => (await daemon.attest(c.pid!)).found, 10_000, `${role} attested`);
      }
      // daemon_start and two grants could not be written: counted, logged once.
      await eventually(async () => (await lostEvents()) >= 3, 10_000, 'lost events counted');
      expect(outageLogs()).toBe(1);
      expect(JSON.parse(daemon.stderrLines.find(l => l.includes('identity history cannot be written'))!)).toMatchObject({ '@level': 'error', error: expect.stringContaining('ENOSPC') });

      // Room again: the next grant is written, and the log says so.
      fs.rmSync(filler);
      const c = spawn('sleep', ['100000'], { stdio: 'ignore' });
      procs.push(c);
      claim(ctx, 'crew-c.json', 'c', c.pid!);
      await eventually(() => daemon.stderrLines.some(l => l.includes('identity history is written again')), 10_000, 'recovered');
      await eventually(() => readHistory(stateDir).events.some(e => e.event === 'grant' && e.host_pid === c.pid), 10_000, 'grant written');
      expect(readHistory(stateDir).skipped).toBe(0);
      expect(outageLogs()).toBe(1);
      expect(await daemon.stop()).toBe(0);
    } finally {
      for (const p of procs) if (p.pid && alive(p.pid)) p.kill('SIGKILL');
      await daemon.cleanup();
      if (mounted) execFileSync('umount', [stateDir]);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
