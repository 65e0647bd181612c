// The plugin's start-time reader keeps /proc/PID/stat open: a cached file must
// never pass a check for another process that got the same PID.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { StatReader } from '../../src/plugin/stat-reader.js';
import { ROOT_SKIP, eventually } from '../helpers/env.js';
import { spawnWithPid } from '../helpers/pod.js';

const kids: ChildProcess[] = [];
afterEach(() => {
  for (const k of kids.splice(0)) k.kill('SIGKILL');
});

const startOf = (pid: number): string => {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] as string;
};

describe('StatReader', () => {
  it('reads a process\'s start time, and nothing once it is gone', async () => {
    const r = new StatReader();
    const c = spawn('sleep', ['100'], { stdio: 'ignore' });
    kids.push(c);
    const pid = c.pid as number;
    expect(r.startTime(pid)).toBe(startOf(pid));
    expect(r.startTime(pid)).toBe(startOf(pid)); // from the open file this time
    c.kill('SIGKILL');
    await eventually(() => !fs.existsSync(`/proc/${pid}`), 5000, 'reaped');
    expect(r.startTime(pid)).toBeUndefined();
    r.close();
  });

  it.skipIf(ROOT_SKIP !== undefined)('answers for the new process when the PID is reused, never with the old one\'s file', async () => {
    const r = new StatReader();
    const old = spawn('sleep', ['100'], { stdio: 'ignore' });
    kids.push(old);
    const pid = old.pid as number;
    const before = r.startTime(pid);
    expect(before).toBe(startOf(pid));
    old.kill('SIGKILL');
    await new Promise(res => setTimeout(res, 1100)); // a later start time (10 ms ticks), for sure
    const reuser = await spawnWithPid(pid);
    kids.push(reuser);
    expect(reuser.pid).toBe(pid);
    const after = r.startTime(pid);
    expect(after).toBe(startOf(pid));
    expect(after).not.toBe(before);
    r.close();
  });

  it('keeps at most 512 files open, closing the least recently used', () => {
    const r = new StatReader();
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    const pids = fs.readdirSync('/proc').filter(n => /^\d+$/.test(n)).map(Number).slice(0, 700);
    for (const pid of pids) r.startTime(pid);
    expect(fs.readdirSync('/proc/self/fd').length - fdsBefore).toBeLessThanOrEqual(512);
    r.close();
    expect(fs.readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore + 1);
  });
});
