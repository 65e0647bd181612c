// WorkloadAttestor.Attest against a FAKE daemon (hexr.pidmapper.v1.PidMapper
// on a temp unix socket): forwarding, filtering, failure modes, recovery and
// reconfiguration while calls are in flight.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ConfigStore, configService } from '../../src/plugin/config-service.js';
import { DaemonClients } from '../../src/plugin/daemon-client.js';
import { newAttestAnswers, workloadAttestorService } from '../../src/plugin/workload-attestor.js';
import { createLogger } from '../../src/log.js';
import { startFakeDaemon, type FakeDaemon } from '../helpers/fake-daemon.js';
import { startTestServer, type TestServer } from '../helpers/grpc-server.js';
import { connect, expectGrpcError, unary } from '../helpers/plugin-client.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) });

const ALL = [
  'process-role:researcher',
  'agent-name:crew',
  'tenant:acme',
  'framework:crewai',
  'pod-uid:1234-abcd',
  'container-id:' + 'a'.repeat(64),
  'spiffe-path:agent/acme/crew/researcher',
];

let dir: string;
let server: TestServer;
let clients: ReturnType<typeof connect>;
let store: ConfigStore;
let daemonClients: DaemonClients;
const answers = newAttestAnswers();
const daemons: FakeDaemon[] = [];

async function daemon(opts: Parameters<typeof startFakeDaemon>[0] = {}): Promise<FakeDaemon> {
  const d = await startFakeDaemon(opts);
  daemons.push(d);
  return d;
}

const attest = (pid: number, opts: grpc.CallOptions = {}): Promise<{ selector_values: string[] }> =>
  unary(clients.attestor, 'Attest', { pid }, opts);
const configure = (hcl: string): Promise<unknown> =>
  unary(clients.config, 'Configure', { core_configuration: { trust_domain: 'example.org' }, hcl_configuration: hcl });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hexr-pa-'));
  store = new ConfigStore();
  daemonClients = new DaemonClients();
  store.onChange(c => daemonClients.retainOnly(c.daemonSocket));
  server = await startTestServer([
    configService({ store, log: silent, setLogLevel: () => undefined }),
    workloadAttestorService({ store, daemon: daemonClients, log: silent, answers }),
  ]);
  clients = connect(server.target);
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

afterAll(async () => {
  clients.close();
  daemonClients.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Attest', () => {
  it('answers FAILED_PRECONDITION "not configured" before Configure', async () => {
    await expectGrpcError(attest(42), grpc.status.FAILED_PRECONDITION, 'not configured');
  });

  it('forwards the PID with in_flight_wait as max_wait_ms and returns the selector values of every kind by default', async () => {
    const d = await daemon({ selectors: { 4242: ALL } });
    await configure(`daemon_socket = "${d.socketPath}"\nin_flight_wait = "200ms"`);
    expect(await attest(4242)).toEqual({ selector_values: ALL });
    expect(d.calls).toEqual([{ pid: 4242, max_wait_ms: 200 }]);
  });

  it('returns only the configured selector kinds, and drops values without a kind', async () => {
    const d = await daemon({ selectors: { 4242: [...ALL, 'no-colon-here', 'unknown-kind:x'] } });
    await configure(`daemon_socket = "${d.socketPath}"\nselectors = ["process-role", "tenant"]`);
    expect(await attest(4242)).toEqual({ selector_values: ['process-role:researcher', 'tenant:acme'] });
  });

  it('returns an empty list for a PID the daemon does not know (e.g. the agent itself)', async () => {
    const d = await daemon({ selectors: { 4242: ALL } });
    await configure(`daemon_socket = "${d.socketPath}"`);
    expect(await attest(process.pid)).toEqual({ selector_values: [] });
  });

  it('returns an empty list for pid <= 0 without asking the daemon', async () => {
    const d = await daemon({ selectors: { 0: ALL } });
    await configure(`daemon_socket = "${d.socketPath}"`);
    const before = answers.no_lookup;
    expect(await attest(0)).toEqual({ selector_values: [] });
    expect(await attest(-1)).toEqual({ selector_values: [] });
    expect(d.calls).toEqual([]);
    expect(answers.no_lookup).toBe(before + 2); // counted too: the counts add up to every call
  });

  it('answers UNAVAILABLE at once, not after attest_timeout, when the daemon is down', async () => {
    await configure(`daemon_socket = "${join(dir, 'nobody-home.sock')}"\nattest_timeout = "20s"`);
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await expectGrpcError(attest(4242), grpc.status.UNAVAILABLE, 'pid-mapper daemon unavailable');
      expect(performance.now() - t0).toBeLessThan(5000);
    }
  });

  it('recovers by itself when the daemon comes back on the same socket', async () => {
    const socketPath = join(dir, 'flappy.sock');
    const d = await daemon({ socketPath, selectors: { 7: ['tenant:acme'] } });
    await configure(`daemon_socket = "${socketPath}"\nattest_timeout = "20s"`);
    expect(await attest(7)).toEqual({ selector_values: ['tenant:acme'] });

    await d.stop();
    daemons.splice(daemons.indexOf(d), 1);
    const t0 = performance.now();
    await expectGrpcError(attest(7), grpc.status.UNAVAILABLE, 'unavailable');
    expect(performance.now() - t0).toBeLessThan(5000); // at once, not after attest_timeout

    await daemon({ socketPath, selectors: { 7: ['tenant:acme'] } });
    const back = performance.now();
    let result: unknown;
    while (performance.now() - back < 10_000) {
      try {
        result = await attest(7);
        break;
      } catch (err) {
        expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
        await new Promise(r => setTimeout(r, 50));
      }
    }
    expect(result).toEqual({ selector_values: ['tenant:acme'] });
    const recoveryMs = performance.now() - back;
    console.log(`recovered ${recoveryMs.toFixed(0)} ms after the daemon came back`);
    expect(recoveryMs).toBeLessThan(3000); // backoff <= 1 s, and some room for a busy machine
  });

  it('answers DEADLINE_EXCEEDED after attest_timeout when the daemon is too slow', async () => {
    const d = await daemon({ selectors: { 7: ['tenant:acme'] }, delayMs: 2000 });
    await configure(`daemon_socket = "${d.socketPath}"\nattest_timeout = "200ms"`);
    const t0 = performance.now();
    await expectGrpcError(attest(7), grpc.status.DEADLINE_EXCEEDED, 'did not answer in time');
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(150);
    expect(took).toBeLessThan(1900); // not the daemon's 2 s
  });

  it('never answers UNIMPLEMENTED, even when the socket serves something else', async () => {
    // The test server itself does not implement hexr.pidmapper.v1.PidMapper.
    await configure(`daemon_socket = "${server.target.slice('unix:'.length)}"`);
    await expectGrpcError(attest(7), grpc.status.INTERNAL, 'daemon failed to answer');
  });

  it('keeps each call on one config snapshot while Configure swaps socket and selectors concurrently', async () => {
    const a = await daemon({ selectors: { 1: ALL }, delayMs: 20 });
    const b = await daemon({ selectors: { 1: ALL }, delayMs: 20 });
    await configure(`daemon_socket = "${a.socketPath}"\nselectors = ["process-role"]`);
    const cfgA = `daemon_socket = "${a.socketPath}"\nselectors = ["process-role"]`;
    const cfgB = `daemon_socket = "${b.socketPath}"\nselectors = ["tenant", "agent-name"]`;

    const results: Promise<{ selector_values: string[] }>[] = [];
    const swaps: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      results.push(attest(1));
      if (i % 10 === 0) swaps.push(configure(i % 20 === 0 ? cfgB : cfgA));
      if (i % 25 === 0) await new Promise(r => setTimeout(r, 5));
    }
    await Promise.all(swaps);
    const answers = await Promise.all(results);
    const shapes = new Set(answers.map(r => r.selector_values.join(',')));
    expect([...shapes].every(s => s === 'process-role:researcher' || s === 'agent-name:crew,tenant:acme')).toBe(true);
    expect(shapes.size).toBe(2);
    expect(a.calls.length + b.calls.length).toBe(200);
    expect(a.calls.length).toBeGreaterThan(0);
    expect(b.calls.length).toBeGreaterThan(0);
  });
});

// The hot path: a mapped PID answered from the plugin's copy of the daemon's
// map (fed by WatchMap), and what bounds that copy's age.
describe('Attest from the copy of the daemon\'s map', () => {
  async function synced(d: FakeDaemon, pid: number): Promise<void> {
    const t0 = performance.now();
    while (performance.now() - t0 < 5000) {
      const before = d.calls.length;
      await attest(pid);
      if (d.calls.length === before) return; // answered without asking the daemon
      await new Promise(r => setTimeout(r, 20));
    }
    throw new Error('the copy never synced');
  }

  it('answers a mapped PID without asking the daemon, and only while its start time matches', async () => {
    const d = await daemon({ selectors: { [process.pid]: ALL }, feed: true });
    await configure(`daemon_socket = "${d.socketPath}"`);
    await synced(d, process.pid);
    const calls = d.calls.length;
    const before = { ...answers };
    for (let i = 0; i < 20; i++) expect(await attest(process.pid)).toEqual({ selector_values: ALL });
    expect(d.calls.length).toBe(calls);
    expect(answers).toEqual({ ...before, copy: before.copy + 20 }); // counted as the plugin reports them when it stops
    // The daemon says the PID is now another process: the copy must not answer for it.
    d.push({ upserts: [{ host_pid: process.pid, start_time: '1', selector_values: ['process-role:other'] }] });
    await new Promise(r => setTimeout(r, 50));
    expect(await attest(process.pid)).toEqual({ selector_values: ALL }); // from Attest, which this fake answers from its table
    expect(d.calls.length).toBe(calls + 1);
    expect(answers).toEqual({ ...before, copy: before.copy + 20, daemon: before.daemon + 1 });
  });

  it('answers an unknown PID with nothing without asking the daemon, when nothing is in flight for it', async () => {
    const d = await daemon({ selectors: { [process.pid]: ALL }, feed: true });
    await configure(`daemon_socket = "${d.socketPath}"`);
    await synced(d, process.pid);
    const calls = d.calls.length;
    for (let i = 0; i < 20; i++) expect(await attest(process.ppid)).toEqual({ selector_values: [] });
    expect(d.calls.length).toBe(calls);
  });

  it('stops answering from the copy once a removal arrives', async () => {
    const d = await daemon({ selectors: { [process.pid]: ALL }, feed: true });
    await configure(`daemon_socket = "${d.socketPath}"`);
    await synced(d, process.pid);
    d.push({ removed: [process.pid] });
    delete d.selectors[process.pid];
    await new Promise(r => setTimeout(r, 50));
    expect(await attest(process.pid)).toEqual({ selector_values: [] });
  });

  // Issue 10, item 3: SIGSTOP the daemon, remove the marker: the plugin kept answering the role.
  it('answers nothing from a copy the daemon has not refreshed within map_max_age: a hung daemon is an error', async () => {
    const d = await daemon({ selectors: { [process.pid]: ALL }, feed: true, heartbeatMs: 100 });
    await configure(`daemon_socket = "${d.socketPath}"\nmap_max_age = "3s"\nattest_timeout = "300ms"\nin_flight_wait = "100ms"`);
    await synced(d, process.pid);
    // The daemon hangs: streams stay open, nothing is sent, Attest never answers.
    d.muted = true;
    d.delayMs = 60_000;
    await new Promise(r => setTimeout(r, 300));
    expect(await attest(process.pid)).toEqual({ selector_values: ALL }); // still within the bound
    await new Promise(r => setTimeout(r, 3000));
    await expectGrpcError(attest(process.pid), grpc.status.DEADLINE_EXCEEDED, 'did not answer in time');
    // Heartbeats again: the copy is trusted again.
    d.muted = false;
    d.delayMs = 0;
    await synced(d, process.pid);
  });
});

describe('DaemonClients', () => {
  // Review finding: the callback ran only inside the log call, so a client
  // without a logger never reported its first copy.
  it('calls onCopied when a copy of the daemon\'s state is complete, with or without a logger', async () => {
    const d = await daemon({ selectors: { [process.pid]: ALL }, feed: true });
    for (const log of [undefined, silent]) {
      let copies = 0;
      const dc = new DaemonClients(log, () => {
        copies++;
        return undefined;
      });
      try {
        await expect.poll(() => (dc.local(d.socketPath, process.pid, 5000), copies), { timeout: 5000 }).toBeGreaterThan(0);
      } finally {
        dc.close();
      }
    }
  });
});
