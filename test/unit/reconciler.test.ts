// The reconciler (the decision core's I/O shell) in-process, on real files and
// real processes of this host (flat layout), with a procfs that fails where a
// test needs it to.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DecisionStore } from '../../src/daemon/decision-store.js';
import { createLayout } from '../../src/daemon/layout.js';
import { createMetrics } from '../../src/daemon/metrics.js';
import { createProcfs, type Procfs } from '../../src/daemon/procfs.js';
import { Reconciler } from '../../src/daemon/reconciler.js';
import { StateWriter } from '../../src/daemon/state-writer.js';
import { createLogger } from '../../src/log.js';
import { eventually } from '../helpers/env.js';

const lines: string[] = [];
const log = createLogger({ destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  lines.length = 0;
});

function sleeper(): ChildProcess {
  const c = spawn('sleep', ['1000'], { stdio: 'ignore' });
  cleanups.push(() => void c.kill('SIGKILL'));
  return c;
}

async function reconciler(procfs: Procfs, before?: (ctx: string) => void, created?: (r: Reconciler) => void): Promise<{ r: Reconciler; dir: string; metrics: ReturnType<typeof createMetrics> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-rec-'));
  const state = path.join(dir, '.state');
  fs.mkdirSync(path.join(dir, 'ctx'));
  before?.(path.join(dir, 'ctx'));
  const metrics = createMetrics();
  const r = new Reconciler({
    layout: createLayout({ kind: 'flat', contextRoot: path.join(dir, 'ctx') }),
    procfs,
    containerContextDir: path.join(dir, 'ctx'),
    markerMaxBytes: 4096,
    exclusiveRoles: true,
    startSlackMs: 50,
    pendingRetryMs: 100,
    livenessIntervalMs: 1000,
    resyncIntervalMs: 60_000,
    podMarkerLimit: 1024,
    podEventRate: 1000,
    state: new StateWriter(state, () => undefined),
    store: new DecisionStore(state, 'boot', () => undefined),
    nodeName: undefined,
    log,
    metrics,
  });
  fs.mkdirSync(state);
  created?.(r);
  await r.start();
  cleanups.push(() => r.close());
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { r, dir: path.join(dir, 'ctx'), metrics };
}

/** The liveness figures of /debug/status, and a wait for `n` more passes to complete. */
function livenessOf(r: Reconciler): { work: () => { liveness_passes: number; liveness_reads: number }; passes: (n: number) => Promise<void> } {
  const work = (): { liveness_passes: number; liveness_reads: number } => r.workStatus() as never;
  return {
    work,
    passes: async n => {
      const p0 = work().liveness_passes;
      await eventually(() => work().liveness_passes >= p0 + n, 10_000, `${n} liveness passes`);
    },
  };
}

/**
 * Runs a test of the narrowed liveness pass on the real procfs, and once more
 * (at most twice) if it failed while the host's PID counter went backwards: a
 * wrap, or another test file setting ns_last_pid to get a PID (spawnWithPid).
 * The next pass then rightly reads every mapping, and exact counts cannot hold.
 */
async function unlessPidCounterWentBack(body: (procfs: Procfs) => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const real = createProcfs();
    let last = 0;
    let backwards = 0;
    const procfs: Procfs = {
      ...real,
      readLastPid: () => {
        const v = real.readLastPid!();
        if (v !== undefined && v < last) backwards++;
        last = v ?? last;
        return v;
      },
    };
    try {
      return await body(procfs);
    } catch (err) {
      if (backwards === 0 || attempt === 3) throw err;
      console.log(`the PID counter went backwards during the test: again (${String(err)})`);
      for (const c of cleanups.splice(0).reverse()) await c();
    }
  }
}

function write(dir: string, name: string, fields: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, `.${name}.tmp`), JSON.stringify({ agent_name: 'crew', tenant: 'acme', ...fields }));
  fs.renameSync(path.join(dir, `.${name}.tmp`), path.join(dir, name));
}

describe('Reconciler', () => {
  // Issue 10, item 6: one marker that throws dropped the rest of its batch until the next resync.
  it('maps every other marker of a batch when one of them fails, and retries the failed one', async () => {
    const real = createProcfs();
    let broken: number | undefined;
    const procfs: Procfs = {
      ...real,
      readPidNs: pid => {
        if (pid === broken) throw Object.assign(new Error('EIO: i/o error, readlink'), { code: 'EIO' });
        return real.readPidNs(pid);
      },
    };
    const { r, dir, metrics } = await reconciler(procfs);
    const procs = [sleeper(), sleeper(), sleeper()];
    await eventually(() => procs.every(p => real.readStartTime(p.pid as number) !== undefined), 5000, 'sleepers');
    broken = procs[1]!.pid;
    const ns = real.readPidNs(process.pid);
    // Names in an order that puts the failing one in the middle of the batch.
    write(dir, 'a.json', { process_role: 'a', container_pid: procs[0]!.pid });
    write(dir, 'b.json', { process_role: 'b', container_pid: procs[1]!.pid, pid_namespace: ns });
    write(dir, 'c.json', { process_role: 'c', container_pid: procs[2]!.pid });
    for (const n of ['a.json', 'b.json', 'c.json']) r.notify(path.join(dir, n));
    await eventually(() => r.snapshot().size === 2, 5000, 'a and c mapped');
    expect(r.snapshot().get(procs[0]!.pid as number)?.marker.process_role).toBe('a');
    expect(r.snapshot().get(procs[2]!.pid as number)?.marker.process_role).toBe('c');
    const b = r.markers().find(m => m.path.endsWith('b.json'));
    expect(b?.reason).toMatch(/last attempt failed: EIO/);
    expect((await metrics.reconcileErrors.get()).values[0]?.value).toBeGreaterThan(0);
    broken = undefined; // the disk recovers: the retry maps it
    await eventually(() => r.snapshot().get(procs[1]!.pid as number)?.marker.process_role === 'b', 5000, 'b mapped on retry');
    expect(r.markers().find(m => m.path.endsWith('b.json'))?.reason).toBe(`mapped to host PID ${procs[1]!.pid}`);
  });

  // Issue 10: after state_dir loss every claim present at startup has the same
  // unknown age. A startup scan long enough to yield settled what it had read
  // so far: the first of two rival claims mapped before the second was seen.
  it('maps neither of two rival claims present at a start without decision state, however long the startup scan takes', async () => {
    const real = createProcfs();
    const procs = Array.from({ length: 12 }, () => sleeper());
    await eventually(() => procs.every(p => real.readStartTime(p.pid as number) !== undefined), 5000, 'sleepers');
    // Every /proc read takes 2 ms, as on a busy node: the scan yields many times.
    const slow = <A extends unknown[], R>(f: (...a: A) => R) => (...a: A): R => {
      const until = performance.now() + 2;
      while (performance.now() < until);
      return f(...a);
    };
    const procfs: Procfs = { ...real, readStartTime: slow(pid => real.readStartTime(pid)), readCgroup: slow(pid => real.readCgroup(pid)) };
    const [holder, rival, ...others] = procs.map(p => p.pid as number);
    const { r } = await reconciler(procfs, dir => {
      // Oldest first: the holder's claim, ten unrelated ones, the rival's.
      write(dir, 'holder.json', { process_role: 'editor', container_pid: holder });
      for (const [i, pid] of others.entries()) write(dir, `other-${i}.json`, { process_role: `other-${i}`, container_pid: pid });
      write(dir, 'rival.json', { process_role: 'editor', container_pid: rival });
    });
    expect(r.snapshot().size).toBe(others.length);
    expect(r.snapshot().get(holder!)).toBeUndefined();
    expect(r.snapshot().get(rival!)).toBeUndefined();
    for (const f of ['holder.json', 'rival.json']) expect(r.markers().find(m => m.path.endsWith(f))?.state).toBe('conflict');
  });

  // Found in review: claims decided by the first settle after startup are
  // rechecked, and the directories those rechecks opened were never closed.
  it('leaves no directory open after a startup that took more than one batch', async () => {
    const real = createProcfs();
    const procs = [sleeper(), sleeper()];
    await eventually(() => procs.every(p => real.readStartTime(p.pid as number) !== undefined), 5000, 'sleepers');
    let r: Reconciler | undefined;
    let ctx = '';
    let fired = false;
    // A second marker arrives while the startup scan evaluates the first: a second batch.
    const procfs: Procfs = {
      ...real,
      readStartTime: pid => {
        if (!fired && r && new Error().stack?.includes('evaluateClaim')) {
          fired = true;
          write(ctx, 'c.json', { process_role: 'c', container_pid: procs[1]!.pid });
          r.notify(path.join(ctx, 'c.json'));
        }
        return real.readStartTime(pid);
      },
    };
    const openTo = (d: string): number =>
      fs.readdirSync('/proc/self/fd').filter(f => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${f}`) === d;
        } catch {
          return false;
        }
      }).length;
    await reconciler(
      procfs,
      dir => {
        ctx = dir;
        write(dir, 'a.json', { process_role: 'a', container_pid: procs[0]!.pid });
      },
      created => (r = created),
    );
    expect(fired).toBe(true);
    await eventually(() => r!.snapshot().size === 2, 5000, 'both mapped');
    expect(openTo(ctx)).toBe(0);
  });

  // Found in review: a resync waited for the whole batch loop, which runs as
  // long as events keep coming; one pod writing steadily (within its budget)
  // kept the daemon from ever finishing its startup scan (never ready).
  it('finishes its startup scan while one pod keeps its event queue busy', async () => {
    const real = createProcfs();
    const p = sleeper();
    await eventually(() => real.readStartTime(p.pid as number) !== undefined, 5000, 'sleeper');
    let spam: NodeJS.Timeout | undefined;
    let events = 0;
    let ctx = '';
    cleanups.push(() => clearInterval(spam));
    // Each batch takes 3 ms (a busy node), so every batch sees new events: ~300/s, within the budget.
    const procfs: Procfs = {
      ...real,
      readLastPid: () => {
        const until = performance.now() + 3;
        while (performance.now() < until);
        return real.readLastPid?.();
      },
    };
    const started = reconciler(
      procfs,
      dir => {
        ctx = dir;
        write(dir, 'a.json', { process_role: 'a', container_pid: p.pid });
      },
      r => {
        const burst = (): void => {
          r.notify(path.join(ctx, `spam-${events++}.json`));
        };
        burst(); // already going when the startup scan begins
        spam = setInterval(burst, 1);
      },
    );
    let loopBusyAtStart = false;
    const outcome = await Promise.race([
      started.then(({ r }) => {
        loopBusyAtStart = (r as unknown as { running: boolean }).running;
        return 'started';
      }),
      new Promise(r => setTimeout(() => r('still starting'), 5000)),
    ]);
    clearInterval(spam);
    expect(outcome).toBe('started');
    expect(loopBusyAtStart).toBe(true); // the spam really kept the batch loop going
    const { r } = await started;
    expect(r.snapshot().get(p.pid as number)?.marker.process_role).toBe('a');
  });

  it('reads, in a liveness pass, only the mapped PIDs that may have changed, and still unmaps a process that exits', () => unlessPidCounterWentBack(async real => {
    const { r, dir } = await reconciler(real);
    const procs = Array.from({ length: 6 }, () => sleeper());
    await eventually(() => procs.every(p => real.readStartTime(p.pid as number) !== undefined), 5000, 'sleepers');
    procs.forEach((p, i) => write(dir, `r${i}.json`, { process_role: `r${i}`, container_pid: p.pid }));
    for (let i = 0; i < procs.length; i++) r.notify(path.join(dir, `r${i}.json`));
    await eventually(() => r.snapshot().size === 6, 5000, 'six mapped');
    const { work, passes } = livenessOf(r);
    await passes(2); // the first pass after the mappings reads all six (nothing to go from)
    const reads = work().liveness_reads;
    await passes(2);
    expect(work().liveness_reads).toBe(reads); // all six still listed, none of their PIDs allocated again
    const gone = procs[0]!.pid as number;
    procs[0]!.kill('SIGKILL');
    await eventually(() => r.snapshot().get(gone) === undefined, 10_000, 'the exited process unmapped');
    expect(work().liveness_reads).toBe(reads + 1); // the one missing from /proc, alone
    expect(r.snapshot().size).toBe(5);
  }));

  // Review of the narrowed pass: a binding may rest on a start time read before
  // the previous pass began, so its PID can be outside every range a pass reads.
  it('reads a process bound since the last liveness pass once, however old its PID', () => unlessPidCounterWentBack(async real => {
    const { r, dir } = await reconciler(real);
    const [a, b] = [sleeper(), sleeper()]; // both started before any pass below
    await eventually(() => [a, b].every(p => real.readStartTime(p.pid as number) !== undefined), 5000, 'sleepers');
    write(dir, 'a.json', { process_role: 'a', container_pid: a.pid });
    r.notify(path.join(dir, 'a.json'));
    await eventually(() => r.snapshot().size === 1, 5000, 'a mapped');
    const { work, passes } = livenessOf(r);
    await passes(2);
    const reads = work().liveness_reads;
    write(dir, 'b.json', { process_role: 'b', container_pid: b.pid });
    r.notify(path.join(dir, 'b.json'));
    await eventually(() => r.snapshot().size === 2, 5000, 'b mapped');
    await passes(2);
    expect(work().liveness_reads).toBe(reads + 1); // b, in the first pass that listed it
    await passes(1);
    expect(work().liveness_reads).toBe(reads + 1); // and not again
  }));
});
