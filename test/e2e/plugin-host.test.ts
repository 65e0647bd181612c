// End to end through a real go-plugin host written in Go (test/e2e/host),
// configured as the SPIRE agent configures external plugins, running
// `node dist/main.js plugin` against a FAKE daemon.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt } from '../helpers/build.js';
import { GO_SKIP, ON_CPU_FIGURE, skipNote } from '../helpers/env.js';
import { buildHost, runHost, type BuiltHost, type HostRun } from '../helpers/go-host.js';
import { startFakeDaemon, type FakeDaemon } from '../helpers/fake-daemon.js';
import { alive } from '../helpers/pod.js';

const ALL = [
  'process-role:researcher',
  'agent-name:crew',
  'tenant:acme',
  'framework:crewai',
  'pod-uid:1234-abcd',
  'container-id:' + 'b'.repeat(64),
  'spiffe-path:agent/acme/crew/researcher',
];
const WRITER = ['process-role:writer', 'agent-name:crew', 'tenant:acme', 'spiffe-path:agent/acme/crew/writer'];
const PLUGIN_SERVICES = ['spire.plugin.agent.workloadattestor.v1.WorkloadAttestor', 'spire.service.common.config.v1.Config'];
const PLUGIN_MODULES = new Set(['plugin', 'config', 'attestor', 'init', 'goplugin']);

/** Unloaded like SPIRE: Deinit OK, Kill graceful within 2 s, process gone, socket gone. */
function expectCleanUnload(run: HostRun): void {
  const loaded = run.events('loaded')[0]!;
  const deinit = run.events('deinit')[0];
  if (deinit) expect(deinit['error']).toBeUndefined();
  const killed = run.events('killed')[0]!;
  expect(killed).toMatchObject({ exited: true, graceful: true });
  expect(killed['kill_ms']).toBeLessThan(2000);
  expect(existsSync(loaded['socket'] as string)).toBe(false);
  expect(alive(loaded['pid'] as number)).toBe(false);
  expect(run.logLines().some(l => l['@message'] === 'plugin failed to exit gracefully')).toBe(false);
}

describe.skipIf(skipNote('e2e (Go go-plugin host)', GO_SKIP))('SPIRE-style go-plugin host → node plugin (fake daemon)', () => {
  let host: BuiltHost;
  let daemon: FakeDaemon;

  beforeAll(async () => {
    await ensureBuilt();
    host = await buildHost();
    console.log(`go host built in ${host.buildMs.toFixed(0)} ms`);
    daemon = await startFakeDaemon({ selectors: { 4242: ALL, 4243: WRITER } });
  });

  afterAll(async () => {
    await daemon?.stop();
    host?.cleanup();
  });

  it('loads, answers Init with exactly the two services, configures, attests concurrently and unloads cleanly', async () => {
    daemon.calls.length = 0;
    const run = await runHost(host, {
      config: `daemon_socket = "${daemon.socketPath}"\n\nin_flight_wait = "100ms"`,
      pids: [4242, 4243, 999_999],
      concurrency: 8,
      repeat: 20,
    });
    expect(run.code, run.stderr).toBe(0);
    const loaded = run.events('loaded')[0]!;
    expect(loaded['plugin_service_names']).toEqual(PLUGIN_SERVICES);
    expect(loaded['network']).toBe('unix');
    expect(loaded['broker_address']).toMatch(/^\/.+/); // ConnInfo{service_id:1} went down the broker stream
    expect(run.events('configured')).toHaveLength(1);

    const attests = run.events('attest');
    expect(attests).toHaveLength(60);
    for (const a of attests) {
      expect(a['error']).toBeUndefined();
      const want = a['pid'] === 4242 ? ALL : a['pid'] === 4243 ? WRITER : [];
      expect(a['selector_values']).toEqual(want);
    }
    expect(daemon.calls).toHaveLength(60);
    expect(daemon.calls.every(c => c.max_wait_ms === 100)).toBe(true);
    console.log(`plugin exec → handshake through the host: ${loaded['handshake_ms']} ms; Init ${loaded['init_ms']} ms`);
    expectCleanUnload(run);
  });

  it("answers no selectors for the host's own PID and the plugin's PID", async () => {
    const run = await runHost(host, { config: `daemon_socket = "${daemon.socketPath}"`, pids: ['host', 'plugin'] });
    expect(run.code, run.stderr).toBe(0);
    const attests = run.events('attest');
    expect(attests).toHaveLength(2);
    for (const a of attests) expect(a).toMatchObject({ selector_values: [] });
    expectCleanUnload(run);
  });

  it('reads quoted-key HCL (JSON agent config) and filters to the configured selector kinds', async () => {
    const run = await runHost(host, {
      config: `"daemon_socket" = "${daemon.socketPath}"\n\n"selectors" = ["process-role", "spiffe-path"]`,
      pids: [4242],
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.events('attest')[0]!['selector_values']).toEqual(['process-role:researcher', 'spiffe-path:agent/acme/crew/researcher']);
    expectCleanUnload(run);
  });

  it('reads plugin_data_file content in JSON', async () => {
    const run = await runHost(host, { config: JSON.stringify({ daemon_socket: daemon.socketPath, selectors: ['tenant'] }), pids: [4242] });
    expect(run.code, run.stderr).toBe(0);
    expect(run.events('attest')[0]!['selector_values']).toEqual(['tenant:acme']);
  });

  it('re-logs the plugin lines in the host logger at their own levels, never as raw debug text', async () => {
    const run = await runHost(host, {
      config: `daemon_socket = "${join(daemon.dir!, 'down.sock')}"\nlog_level = "debug"\nattest_timeout = "10s"`,
      pids: [4242],
    });
    expect(run.code, run.stderr).toBe(0);
    const attest = run.events('attest')[0]!;
    expect(attest['error']).toMatchObject({ code: 'Unavailable' });
    expect(attest['error'].message).toContain('pid-mapper daemon unavailable');
    expect(attest['ms']).toBeLessThan(5000); // at once, not after attest_timeout

    const lines = run.pluginLogLines();
    const find = (msg: string): Record<string, any> | undefined => lines.find(l => l['@message'] === msg);
    expect(find('plugin configured')).toMatchObject({ '@level': 'info', '@module': 'config' });
    expect(find('attestation failed')).toMatchObject({ '@level': 'warn', host_pid: 4242 });
    expect(find('deinit')).toMatchObject({ '@level': 'debug' });
    expect(find('plugin stopped')).toMatchObject({ '@level': 'info' });
    // A line go-plugin could not parse would arrive at debug with the raw JSON as its message.
    expect(run.logLines().filter(l => String(l['@message']).startsWith('{'))).toEqual([]);
    expect(lines.every(l => PLUGIN_MODULES.has(l['@module'] as string))).toBe(true);
  });

  it('fails the load with a readable INVALID_ARGUMENT listing every problem, and still unloads cleanly', async () => {
    const run = await runHost(host, {
      config: 'colour = "blue"\n\nattest_timeout = "45s"\n\nselectors = ["shoe-size"]',
      pids: [4242],
    });
    expect(run.code).toBe(1);
    const err = run.events('error')[0]!;
    expect(err).toMatchObject({ stage: 'configure', code: 'InvalidArgument' });
    expect(err['message']).toContain('unknown option "colour"');
    expect(err['message']).toContain('attest_timeout must be > 0 and <= 30s');
    expect(err['message']).toContain('selectors: unknown kind "shoe-size"');
    expect(run.events('attest')).toEqual([]);
    expectCleanUnload(run);
  });

  it('answers FAILED_PRECONDITION "not configured" to Attest before Configure', async () => {
    const run = await runHost(host, { skipConfigure: true, pids: [4242] });
    expect(run.code, run.stderr).toBe(0);
    expect(run.events('attest')[0]!['error']).toEqual({ code: 'FailedPrecondition', message: 'not configured' });
    expectCleanUnload(run);
  });

  it('sustains concurrent load through the host (latency figures printed, the warm-up apart), and the plugin counts how it answered every call', async () => {
    const run = await runHost(host, {
      config: `daemon_socket = "${daemon.socketPath}"`,
      pids: [4242, 4243, 1],
      concurrency: 16,
      duration: '2s',
      warmup: '3s',
    });
    expect(run.code, run.stderr).toBe(0);
    const bench = run.events('bench')[0]!;
    const warm = run.events('warmup')[0]!;
    console.log(`attest through go-plugin host → plugin → fake daemon: ${JSON.stringify(bench)}; warm-up: ${JSON.stringify(warm)}`);
    expect(bench['errors']).toBe(0);
    expect(bench['calls']).toBeGreaterThan(100);
    expect(warm['calls']).toBeGreaterThan(0);
    expect(bench['elapsed_s']).toBeLessThan(4.5); // the measured part only (with the warm-up it would be 5 or more)
    const stopped = run.pluginLogLines().find(l => l['@message'] === 'plugin stopped')!;
    const a = stopped['attest_answers'] as Record<string, number>;
    expect(Object.keys(a).sort()).toEqual(['copy', 'copy_after_wait', 'daemon', 'daemon_after_wait', 'no_lookup']);
    expect(Object.values(a).reduce((x, y) => x + y, 0)).toBe((bench['calls'] as number) + (warm['calls'] as number));
    // Its event-loop delay: the plain maximum, and the on-CPU one (src/loop-delay.ts).
    expect(stopped['event_loop_delay_max_ms']).toBeGreaterThan(0);
    expect(stopped['event_loop_delay_max_on_cpu_ms']).toEqual(ON_CPU_FIGURE);
    expectCleanUnload(run);
  });
});
