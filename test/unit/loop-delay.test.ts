// The event-loop delay monitor tells a delay its own thread caused (running)
// from one where it did not run at all, as when a hypervisor leaves the vCPU
// unscheduled. Real processes: one busy-loops, one is stopped with SIGSTOP
// (not running, as under steal).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { onCpuDelayMs, parseSchedstat } from '../../src/loop-delay.js';
import { ensureBuilt, REPO } from '../helpers/build.js';
import { HAS_SCHEDSTAT, skipNote } from '../helpers/env.js';

describe('on-CPU share of a delay', () => {
  it('reads the time on a CPU from schedstat, and nothing from anything else', () => {
    expect(parseSchedstat('2000000 500000 7\n')).toBe(2_000_000);
    expect(parseSchedstat('')).toBeUndefined();
    expect(parseSchedstat('x 1 2')).toBeUndefined();
  });

  it('counts at most the time the thread ran, and never more than the delay', () => {
    expect(onCpuDelayMs(100, 2_000_000)).toBe(2); // descheduled: 2 ms of 100
    expect(onCpuDelayMs(100, 300_000_000)).toBe(100); // busy the whole time
    expect(onCpuDelayMs(-3, 5_000_000)).toBe(0); // early: no delay
  });
});

const skip = skipNote('loop delay (real processes)', HAS_SCHEDSTAT ? undefined : 'needs Linux with /proc/thread-self/schedstat');

describe.skipIf(skip)('LoopDelayMonitor on a real process', () => {
  /**
   * Runs `body` against a Node process running the monitor, freshly reset and settled
   * (the histogram's first sample after a reset is not kept), and kills it after.
   * Commands on stdin, one JSON reply per line: "read", "reset", "busy MS" (MS of CPU
   * time, then read), "busy-then-reset MS" (the same, then a reset in the same turn).
   */
  async function withMonitored(body: (child: ChildProcessWithoutNullStreams, ask: (cmd: string) => Promise<Record<string, number>>) => Promise<void>): Promise<void> {
    await ensureBuilt();
    const url = pathToFileURL(join(REPO, 'dist', 'loop-delay.js')).href;
    const code = `import { LoopDelayMonitor } from ${JSON.stringify(url)};
const m = new LoopDelayMonitor(); m.start();
let buf = '';
process.stdin.on('data', d => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const cmd = buf.slice(0, i); buf = buf.slice(i + 1);
  const [verb, arg] = cmd.split(' ');
  if (arg !== undefined) { const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }; const end = cpu() + Number(arg); while (cpu() < end); }
  process.stdout.write(JSON.stringify(m.read(verb === 'reset' || verb === 'busy-then-reset')) + '\\n'); } });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code]);
    let out = '';
    const waiting: ((l: string) => void)[] = [];
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        waiting.shift()?.(line);
      }
    });
    const ask = (cmd: string): Promise<Record<string, number>> =>
      new Promise(resolve => {
        waiting.push(l => resolve(JSON.parse(l) as Record<string, number>));
        child.stdin.write(`${cmd}\n`);
      });
    try {
      await ask('reset');
      await settle(50);
      await body(child, ask);
    } finally {
      child.kill();
    }
  }

  const settle = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

  it('counts a delay its own code caused', () =>
    withMonitored(async (_child, ask) => {
      await ask('busy 150');
      await settle(50); // the monitor's next sample sees the delay
      const r = await ask('read');
      expect(r['max_ms']).toBeGreaterThanOrEqual(100);
      expect(r['max_on_cpu_ms']).toBeGreaterThanOrEqual(100);
    }));

  it('counts a delay that ends in the turn of a reset in the window the reset closes, not the next', () =>
    withMonitored(async (_child, ask) => {
      const closed = await ask('busy-then-reset 150');
      expect(closed['max_on_cpu_ms'], 'the window the reset closes').toBeGreaterThanOrEqual(100);
      await settle(50);
      expect((await ask('read'))['max_on_cpu_ms'], 'the next window').toBeLessThan(50);
    }));

  it('does not count the time the process did not run (stopped, as a VM is by steal)', () =>
    withMonitored(async (child, ask) => {
      child.kill('SIGSTOP');
      await settle(300);
      child.kill('SIGCONT');
      await settle(50);
      const r = await ask('read');
      expect(r['max_ms'], 'the plain maximum sees the stop').toBeGreaterThanOrEqual(200);
      expect(r['max_on_cpu_ms'], 'the on-CPU maximum does not').toBeLessThan(50);
    }));
});
