// Real SPIRE in the loop: spire-server and spire-agent 1.13.3 issue X.509-SVIDs
// per process, through our WorkloadAttestor "hexr" (loaded as
// daemonset/spire-agent-hexr.conf ships it) and our daemon, to workloads in
// real pods (PID + mount namespaces, kubepods cgroups, emptyDir, the agent's
// socket mounted in). Every assertion is on a certificate the real agent
// issued to `spire-agent api fetch x509`, run as the workload process itself,
// or on its absence.
//
// Entries come from our `registrations` command with k8s:ns + k8s:sa swapped
// for hexr:pod-uid:<pod A> (no Kubernetes attestor here; see lib/registrations.ts):
// every role is scoped to pod A.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/env.js';
import { roleId } from './lib/svid.js';
import { BUILD_TIMEOUT_MS, skipSpireTier } from './lib/tier.js';
import { fetchAsProcess } from './lib/workloads.js';
import { World } from './lib/world.js';

const skip = skipSpireTier('per-process SVIDs');

/** The real agent refused: no SVID written, the Workload API said why. */
function expectNoIdentity(r: Awaited<ReturnType<typeof fetchAsProcess>>): void {
  expect(r.code).toBe(1);
  expect(r.files).toEqual([]);
  expect(r.stderr).toMatch(/PermissionDenied.*no identity issued/);
}

describe.skipIf(skip)('real SPIRE 1.13.3: one X.509-SVID per role process', () => {
  let w: World;

  beforeAll(async () => {
    w = await World.start({ pods: { a: 'v2-systemd-containerd', b: 'v1-cgroupfs' }, entriesFor: ['a'] });
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await w?.cleanup();
  });

  it('creates the entries our registrations command prints, scoped to pod A', async () => {
    expect(w.entries).toHaveLength(3);
    const shown = await w.server.cli(['entry', 'show'], ['-selector', `hexr:pod-uid:${w.pod('a').uid}`]);
    for (const role of ['researcher', 'writer', 'editor']) {
      expect(shown).toContain(roleId(role));
    }
    expect(shown).toContain('hexr:process-role:researcher');
    expect(shown).toContain('Parent ID        : spiffe://example.org/ns/spire/sa/spire-agent');
  });

  it('gives two roles of one pod two different SPIFFE IDs, each only its own', async () => {
    const pod = w.pod('a');
    const [researcher, writer] = await Promise.all([
      fetchAsProcess(pod, w.bins, w.daemon, w.out('researcher'), { role: 'researcher' }),
      fetchAsProcess(pod, w.bins, w.daemon, w.out('writer'), { role: 'writer' }),
    ]);
    expect(researcher.code, researcher.stderr).toBe(0);
    expect(writer.code, writer.stderr).toBe(0);
    expect(researcher.spiffeId).toBe(roleId('researcher'));
    expect(writer.spiffeId).toBe(roleId('writer'));
    // Only its own: one SVID each, no other role's.
    expect(researcher.files).toEqual(['svid.0.pem']);
    expect(writer.files).toEqual(['svid.0.pem']);
  });

  it('gives no identity to a process of the same pod that wrote no marker', async () => {
    const r = await fetchAsProcess(w.pod('a'), w.bins, w.daemon, w.out('no-marker'));
    expectNoIdentity(r);
  });

  it('gives nothing to a process of another pod that claims the same role name (the entries are pod-scoped)', async () => {
    const pod = w.pod('b');
    const r = await fetchAsProcess(pod, w.bins, w.daemon, w.out('other-pod'), { role: 'researcher' });
    // The daemon did map it (it is pod B's own process, claiming for itself), with pod B's UID...
    expect(r.mapped).toMatchObject({ process_role: 'researcher', pod_uid: pod.uid });
    // ...and the real agent still issued nothing: no entry carries pod B's UID.
    expectNoIdentity(r);
  });

  it('gives no identity to a new process that reuses the container PID of a role process that exited', async () => {
    const pod = w.pod('a');
    const first = await fetchAsProcess(pod, w.bins, w.daemon, w.out('editor'), { role: 'editor' });
    expect(first.code, first.stderr).toBe(0);
    expect(first.spiffeId).toBe(roleId('editor'));
    // The editor process has exited (the fetch was its last act); the daemon marks its marker stale.
    const file = pod.hostPath('content-crew-editor.json');
    await eventually(async () => (await w.daemon.marker(file))?.state === 'stale', 10_000, 'editor marker stale');
    expect(fs.existsSync(file)).toBe(true); // the claim is still on disk, naming that container PID

    // A new process of the same pod takes the same container PID (ns_last_pid inside the pod) and fetches.
    let reuse: Awaited<ReturnType<typeof fetchAsProcess>> | undefined;
    for (let attempt = 0; attempt < 5 && reuse?.cpid !== first.cpid; attempt++) {
      reuse = await fetchAsProcess(pod, w.bins, w.daemon, w.out(`reuser-${attempt}`), { reuseCpid: first.cpid });
    }
    expect(reuse?.cpid, 'could not get the same container PID').toBe(first.cpid);
    expectNoIdentity(reuse!);
  });

  it("passes the agent's own health check with our plugin loaded, and our plugin's lines are in the agent's log at their level", async () => {
    const h = await w.agent.healthcheck();
    expect(h.code, h.out).toBe(0);
    expect(h.out).toContain('Agent is healthy.');

    const lines = w.agent.pluginLogs();
    const configured = lines.find(l => l['msg'] === 'plugin configured');
    expect(configured, w.agent.tail()).toMatchObject({ level: 'info', plugin_name: 'hexr', plugin_type: 'WorkloadAttestor', external: true, '@module': 'config' });
    expect(configured!['subsystem_name']).toBe('hexr.hexr-plugin.mjs');
    expect(lines.filter(l => l['msg'] === 'plugin serving').map(l => l['level'])).toContain('info');
    // plugin_data says log_level = "info": none of the plugin's debug lines reach the agent.
    expect(lines.filter(l => l['level'] === 'debug')).toEqual([]);
    // Never a plugin line degraded to raw text (that would arrive at debug with the JSON as its message).
    expect(w.agent.logs().filter(l => typeof l['msg'] === 'string' && l['msg'].startsWith('{"@'))).toEqual([]);
    // The agent loaded it as an external plugin with a verified checksum: no "checksum not configured" warning.
    expect(w.agent.logs().some(l => l['msg'] === 'Plugin checksum not configured')).toBe(false);
    expect(w.agent.logs().some(l => l['msg'] === 'Plugin loaded' && l['plugin_name'] === 'hexr')).toBe(true);
  });
});
