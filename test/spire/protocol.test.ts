// What the real SPIRE 1.13.3 agent does to an external WorkloadAttestor,
// recorded by test/spire/fixtures/recording-plugin.mjs (our go-plugin
// transport, answering nothing) loaded with the plugin_data of the shipped
// hexr block. These are the facts our own Go host (test/go/cmd/hexr-host) did
// not show before it was moved onto SPIRE's go-plugin, or still does not do:
// the README's "Real SPIRE vs our Go host" list is taken from here.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, ensureBuilt } from '../helpers/build.js';
import { eventually } from '../helpers/env.js';
import { SpireAgent } from './lib/agent.js';
import { ensureSpire, type SpireBins } from './lib/bins.js';
import { shippedHexrBlock } from './lib/configs.js';
import { SpireServer } from './lib/server.js';
import { BUILD_TIMEOUT_MS, skipSpireTier } from './lib/tier.js';

const skip = skipSpireTier('what the agent sends a plugin');
const RECORDER = path.join(REPO, 'test', 'spire', 'fixtures', 'recording-plugin.mjs');

type Rec = Record<string, any> & { event: string };

describe.skipIf(skip)('real SPIRE 1.13.3 as seen from inside an external WorkloadAttestor', () => {
  let bins: SpireBins;
  let root: string;
  let server: SpireServer;
  let agent: SpireAgent;
  let recordFile: string;
  const recs = (event?: string): Rec[] =>
    fs
      .readFileSync(recordFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(l => JSON.parse(l) as Rec)
      .filter(r => event === undefined || r.event === event);

  beforeAll(async () => {
    [bins] = await Promise.all([ensureSpire(), ensureBuilt()]);
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-spire-proto-'));
    recordFile = path.join(root, 'record.jsonl');
    fs.writeFileSync(recordFile, '');
    server = new SpireServer(bins, root);
    await server.start();
    // The shipped block, plugin_data and all, with the recorder as the command (no checksum: it is node).
    const block = shippedHexrBlock()
      .replace('WorkloadAttestor "hexr"', 'WorkloadAttestor "recorder"')
      .replace(/plugin_cmd\s*=\s*"[^"]*"/, `plugin_cmd = "${process.execPath}"`)
      .replace(/plugin_args\s*=\s*\[\]/, `plugin_args = ["${RECORDER}"]`)
      .replace(/\n\s*plugin_checksum\s*=\s*"[^"]*"/, '');
    agent = new SpireAgent(bins, server, root, { name: 'agent', alias: 'spiffe://example.org/recorder-agent', attestors: block, env: { HEXR_RECORD_FILE: recordFile } });
    await agent.start();
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("re-prints plugin_data as HCL v1: each key with its own # comments above it, unindented, one blank line between keys", () => {
    const [cfg] = recs('configure');
    expect(cfg!['core']).toEqual({ trust_domain: 'example.org' });
    // What the hcl v1 printer makes of the shipped plugin_data block: its lines
    // unindented, comment lines kept with the key below them, groups
    // separated by one blank line (and nothing else: no braces, no trailing newline).
    const body = /plugin_data\s*\{\n([\s\S]*?)\n\s*\}/.exec(shippedHexrBlock())![1]!;
    const groups: string[][] = [[]];
    for (const line of body.split('\n').map(l => l.trim())) {
      if (line === '') continue;
      groups.at(-1)!.push(line);
      if (!line.startsWith('#')) groups.push([]);
    }
    const expected = groups
      .filter(g => g.length > 0)
      .map(g => g.join('\n'))
      .join('\n\n');
    expect(cfg!['hcl']).toBe(expected);
    expect(cfg!['hcl']).toContain('\n# Deadline of one Attest call to the daemon (> 0, <= 30s).\nattest_timeout = "1s"\n');
    expect(cfg!['hcl']).toContain('\n\nlog_level = "info"');
  });

  it('offers the Metrics host service in Init, and starts the plugin with the agent umask 0027 and go-plugin variables', () => {
    expect(recs('init')[0]!['host_service_names']).toEqual(['spire.hostservice.common.metrics.v1.Metrics']);
    const p = recs('process')[0]!;
    expect(p['umask']).toBe(0o027); // the agent tightens its umask before it starts plugins
    expect(p['env']).toMatchObject({ WorkloadAttestor: 'WorkloadAttestor', PLUGIN_PROTOCOL_VERSIONS: '1', PLUGIN_MIN_PORT: '10000', PLUGIN_MAX_PORT: '25000' });
    expect(p['env']['PLUGIN_UNIX_SOCKET_DIR']).toBeUndefined();
    expect(p['argv']).toEqual([RECORDER]);
    expect(p['ppid']).toBe(agent.pid);
  });

  it("attests the agent's own PID, with no deadline, for its health checks", async () => {
    expect((await agent.healthcheck()).code).toBe(0);
    const own = await eventually(() => recs('attest').filter(a => a['pid'] === agent.pid), 10_000, 'attest of the agent PID');
    expect(own.every(a => a['deadline_ms'] === null)).toBe(true);
  });

  it("passes a Workload API client's deadline on to the plugin's Attest (grpc-timeout), and one Attest per call", async () => {
    const child = execFile(bins.agent, ['api', 'fetch', 'x509', '-socketPath', agent.socket, '-timeout', '7s']);
    const pid = child.pid!;
    await new Promise(r => child.once('exit', r));
    const mine = recs('attest').filter(a => a['pid'] === pid);
    expect(mine).toHaveLength(1);
    expect(mine[0]!['deadline_ms']).toBeGreaterThan(5000);
    expect(mine[0]!['deadline_ms']).toBeLessThanOrEqual(7000);
    expect(mine[0]!['metadata']['user-agent']).toMatch(/^grpc-go\//);
  });

  it('calls Deinit with a 10 s deadline on shutdown, then stops the plugin', async () => {
    await agent.stop();
    const [d] = recs('deinit');
    expect(d!['deadline_ms']).toBeGreaterThan(8000);
    expect(d!['deadline_ms']).toBeLessThanOrEqual(10_000);
    await eventually(() => recs('stopped').length === 1, 5000, 'plugin stopped');
  });
});
