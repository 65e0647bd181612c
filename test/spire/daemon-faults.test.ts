// Real SPIRE 1.13.3 when our daemon is down or hung: the agent must issue no
// hexr-based identity (fail closed), and must recover by itself.
//
// The workloads are long-lived role processes (test/go hexr-workload serve, a
// go-spiffe Workload API client that writes its own marker and fetches on
// request), so that the same mapped PID asks again after each fault.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { eventually } from '../helpers/env.js';
import { roleId } from './lib/svid.js';
import { BUILD_TIMEOUT_MS, skipSpireTier } from './lib/tier.js';
import { startServingRole, type ServingRole } from './lib/workloads.js';
import { World } from './lib/world.js';

const skip = skipSpireTier('daemon faults');

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

/**
 * Bound for a hung daemon. The daemon's map feed (WatchMap) carries a
 * heartbeat; the plugin stops answering from its copy of the map at most 2 s
 * after the feed goes quiet, and then asks the daemon, which does not answer
 * within attest_timeout (1 s, daemonset/spire-agent-hexr.conf): that Attest
 * fails, the agent drops our selectors, and no entry matches. So from 3 s
 * after the daemon stops, nothing hexr-based is issued; 1.5 s more for
 * scheduling on a loaded machine.
 */
const HEARTBEAT_TIMEOUT_MS = 2000;
const ATTEST_TIMEOUT_MS = 1000;
const HUNG_BOUND_MS = HEARTBEAT_TIMEOUT_MS + ATTEST_TIMEOUT_MS + 1500;

/** Attest calls the daemon answered with a mapping (the plugin's answers from its copy of the map are not counted). */
async function daemonFoundCalls(w: World): Promise<number> {
  const text = await w.daemon.metrics();
  const m = /^hexr_attest_calls_total\{result="found"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe.skipIf(skip)('real SPIRE 1.13.3: daemon stopped or hung', () => {
  let w: World;
  let researcher: ServingRole;
  let writer: ServingRole;

  beforeAll(async () => {
    w = await World.start({ pods: { a: 'v2-systemd-crio' }, entriesFor: ['a'], daemonArgs: ['--metrics-addr', '127.0.0.1:0'] });
    const pod = w.pod('a');
    const ctl = path.join(w.root, 'ctl');
    fs.mkdirSync(ctl);
    researcher = await startServingRole(pod, w.bins, 'researcher', path.join(ctl, 'researcher.sock'));
    writer = await startServingRole(pod, w.bins, 'writer', path.join(ctl, 'writer.sock'));
    await eventually(async () => (await w.daemon.pidmap()).length === 2, 15_000, 'both roles mapped');
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await w?.cleanup();
  });

  it('issues each role its SVID while the daemon runs', async () => {
    const [r, wr] = await Promise.all([researcher.fetch(), writer.fetch()]);
    expect(r.ids).toEqual([roleId('researcher')]);
    expect(wr.ids).toEqual([roleId('writer')]);
  });

  it('issues nothing hexr-based while the daemon is stopped, and recovers by itself when it is back', async () => {
    await w.daemon.stop();
    await sleep(200); // the plugin drops its copy of the map when the feed's connection closes
    const down = await researcher.fetch();
    expect(down.ok).toBe(false);
    expect(down.code).toBe('PermissionDenied');
    expect(down.message).toBe('no identity issued');
    // The agent logged our plugin's UNAVAILABLE and went on with the unix selectors only.
    const failed = w.agent.logs().filter(l => l['msg'] === 'Failed to collect all selectors for PID' && l['pid'] === researcher.proc.hostPid);
    expect(failed.length, w.agent.tail()).toBeGreaterThan(0);
    expect(String(failed.at(-1)!['error'])).toMatch(/workloadattestor\(hexr\).*pid-mapper daemon unavailable/);
    // Our plugin's own warning, re-logged by the agent at its level.
    expect(w.agent.pluginLogs().find(l => l['msg'] === 'attestation failed')).toMatchObject({ level: 'warning', host_pid: researcher.proc.hostPid });

    await w.daemon.start(); // same socket, same state dir; the plugin reconnects on its own
    const back = await eventually(async () => {
      const r = await researcher.fetch();
      return r.ok ? r : undefined;
    }, 20_000, 'an SVID again after the daemon restarted');
    expect(back.ids).toEqual([roleId('researcher')]);
    expect((await writer.fetch()).ids).toEqual([roleId('writer')]);
  });

  it(`issues no SVID for a role revoked while the daemon is hung (SIGSTOP), from ${HUNG_BOUND_MS} ms after it stopped`, async () => {
    const pid = w.daemon.pid!;
    // Precondition: the plugin answers the writer from its copy of the map (the daemon is not asked),
    // so what follows tests how long that copy is trusted, not a plugin that asks the daemon anyway.
    await eventually(
      async () => {
        const before = await daemonFoundCalls(w);
        const r = await writer.fetch();
        return r.ok && r.ids[0] === roleId('writer') && (await daemonFoundCalls(w)) === before;
      },
      15_000,
      "writer served from the plugin's copy of the map",
    );
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    try {
      // Revoke the writer's role: its marker goes away. The hung daemon cannot notice.
      fs.rmSync(w.pod('a').hostPath('content-crew-writer.json'));
      await sleep(Math.max(0, stoppedAt + HUNG_BOUND_MS - Date.now()));
      const revoked = await writer.fetch();
      expect(revoked.ids, `writer still got ${JSON.stringify(revoked.ids)} ${Date.now() - stoppedAt} ms into the hang`).toEqual([]);
      expect(revoked.code).toBe('PermissionDenied');
      // Fail closed for everyone while the daemon is hung: the plugin cannot vouch for any PID.
      const other = await researcher.fetch();
      expect(other.ids).toEqual([]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Once the daemon runs again, the revocation holds and the researcher recovers.
    const back = await eventually(async () => {
      const r = await researcher.fetch();
      return r.ok ? r : undefined;
    }, 20_000, 'researcher served after SIGCONT');
    expect(back.ids).toEqual([roleId('researcher')]);
    // The removal waited in the kernel's inotify queue during the hang; once the
    // daemon has taken it (as for any removal, milliseconds), it holds.
    await eventually(async () => (await w.daemon.marker(w.pod('a').hostPath('content-crew-writer.json'))) === undefined, 10_000, 'the removal processed after SIGCONT');
    const after = await writer.fetch();
    expect(after.ids).toEqual([]);
  });
});
