// Every SPIRE configuration we ship, checked by the real SPIRE 1.13.3
// binaries, and a wrong plugin_checksum: the agent refuses to start and our
// `doctor` says why.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, REPO, ensureBuilt } from '../helpers/build.js';
import { SpireAgent } from './lib/agent.js';
import { ensureSpire, type SpireBins } from './lib/bins.js';
import { AGENT_CONF, SERVER_CONF, agentConfig, checksumOf, hexrBlock, shippedHexrBlock } from './lib/configs.js';
import { IMAGE_PLUGIN_CMD, inImageLayout } from './lib/image-layout.js';
import { SpireServer } from './lib/server.js';
import { BUILD_TIMEOUT_MS, skipSpireTier } from './lib/tier.js';
import { AGENT_ALIAS } from './lib/world.js';

const run = promisify(execFile);
const skip = skipSpireTier('configs and checksum');

interface Ran {
  code: number;
  out: string;
}
async function exec(cmd: string, args: string[], env?: Record<string, string>): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** An agent.conf as daemonset/README.md step 4 has users write it: their Kubernetes agent config plus the shipped block. */
function kubernetesAgentConf(): string {
  return `agent {
    data_dir = "/run/spire"
    log_level = "INFO"
    server_address = "spire-server.spire"
    server_port = "8081"
    socket_path = "/run/spire/agent-sockets/spire-agent.sock"
    trust_bundle_path = "/run/spire/bundle/bundle.crt"
    trust_domain = "example.org"
}

plugins {
    NodeAttestor "k8s_psat" {
        plugin_data {
            cluster = "demo-cluster"
        }
    }

    KeyManager "memory" {
        plugin_data {}
    }

    WorkloadAttestor "k8s" {
        plugin_data {
            skip_kubelet_verification = true
        }
    }

${shippedHexrBlock()}
}
`;
}

describe.skipIf(skip)('real SPIRE 1.13.3 on the configurations we ship', () => {
  let bins: SpireBins;
  let dir: string;
  const env = (): Record<string, string> => ({
    HEXR_SPIRE_SERVER_DIR: path.join(dir, 'server'),
    HEXR_SPIRE_SERVER_PORT: '8081',
    HEXR_SPIRE_AGENT_DIR: path.join(dir, 'agent'),
    HEXR_SPIRE_SOCKET_DIR: path.join(dir, 'sockets'),
    HEXR_SPIRE_BUNDLE: path.join(dir, 'bundle.pem'),
  });
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };

  beforeAll(async () => {
    [bins] = await Promise.all([ensureSpire(), ensureBuilt()]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-spire-conf-'));
  }, BUILD_TIMEOUT_MS);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('spire-server validate accepts scripts/spire/server.conf', async () => {
    const r = await exec(bins.server, ['validate', '-config', SERVER_CONF, '-expandEnv'], env());
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('SPIRE server configuration file is valid.');
  });

  it('spire-agent validate accepts scripts/spire/agent.conf alone and with the shipped hexr block', async () => {
    const alone = await exec(bins.agent, ['validate', '-config', AGENT_CONF, '-expandEnv'], env());
    expect(alone.code, alone.out).toBe(0);
    expect(alone.out).toContain('SPIRE agent configuration file is valid.');
    const withHexr = write('agent-hexr.conf', agentConfig(shippedHexrBlock()));
    const r = await exec(bins.agent, ['validate', '-config', withHexr, '-expandEnv'], env());
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('SPIRE agent configuration file is valid.');
  });

  it('spire-agent validate accepts daemonset/spire-agent-hexr.conf merged into a Kubernetes agent config (daemonset/README.md step 4)', async () => {
    const f = write('agent-k8s.conf', kubernetesAgentConf());
    const r = await exec(bins.agent, ['validate', '-config', f]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('SPIRE agent configuration file is valid.');
  });

  it('spire-agent validate is not vacuous: it rejects a hexr block with both plugin_data and plugin_data_file', async () => {
    const broken = shippedHexrBlock().replace(/plugin_args\s*=\s*\[\]/, 'plugin_args = []\n        plugin_data_file = "/etc/hexr.json"');
    expect(broken).toContain('plugin_data_file');
    const f = write('agent-broken.conf', agentConfig(broken));
    const r = await exec(bins.agent, ['validate', '-config', f, '-expandEnv'], env());
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/SPIRE agent configuration file is invalid.*only one of \[plugin_data, plugin_data_file\]/s);
  });

  it('the shipped plugin_checksum is the sha256 of the shipped launcher', () => {
    const sum = createHash('sha256').update(fs.readFileSync(path.join(REPO, 'bin', 'hexr-plugin.mjs'))).digest('hex');
    expect(checksumOf(shippedHexrBlock())).toBe(sum);
  });

  describe('a wrong plugin_checksum', () => {
    let server: SpireServer;
    let root: string;

    beforeAll(async () => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-spire-sum-'));
      server = new SpireServer(bins, root);
      await server.start();
    }, 120_000);

    afterAll(async () => {
      await server?.stop();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    /** doctor --spire-config FILE, run with the agent image's filesystem view (where plugin_cmd exists). */
    async function doctor(conf: string): Promise<Ran> {
      const argv = inImageLayout(
        [process.execPath, MAIN_JS, 'doctor', '--layout', 'flat', '--context-root', root, '--socket', path.join(root, 'none.sock'), '--spire-config', conf],
        fs.mkdtempSync(path.join(root, 'stage-')),
      );
      return exec(argv[0]!, argv.slice(1));
    }

    it('the shipped checksum: the agent starts, and doctor passes plugin_cmd and plugin_checksum', async () => {
      const agent = new SpireAgent(bins, server, root, { name: 'agent-good', alias: AGENT_ALIAS, attestors: hexrBlock(path.join(root, 'none.sock')) });
      try {
        await agent.start();
        expect(agent.logs().some(l => l['msg'] === 'Plugin loaded' && l['plugin_name'] === 'hexr')).toBe(true);
      } finally {
        await agent.stop();
      }
      const d = await doctor(agent.configFile);
      expect(d.out).toMatch(new RegExp(`^PASS\\s+SPIRE plugin_cmd\\s+${IMAGE_PLUGIN_CMD} \\(interpreter /usr/local/bin/node\\)$`, 'm'));
      expect(d.out).toMatch(/^PASS\s+SPIRE plugin_checksum\s+matches plugin_cmd$/m);
    });

    it('refuses to start the agent, and doctor says why', async () => {
      const wrong = createHash('sha256').update('not the launcher').digest('hex');
      const agent = new SpireAgent(bins, server, root, { name: 'agent-wrong', alias: AGENT_ALIAS, attestors: hexrBlock(path.join(root, 'none.sock'), { checksum: wrong }) });
      const proc = await agent.launch();
      const exited = await Promise.race([proc.exited, new Promise<null>(r => setTimeout(() => r(null), 30_000))]);
      await agent.stop();
      expect(exited, `agent still running:\n${agent.tail()}`).not.toBeNull();
      expect(exited!.code).not.toBe(0);
      const crashed = agent.logs().find(l => l['msg'] === 'Agent crashed');
      expect(crashed?.['error'], agent.tail()).toBe('failed to load plugin "hexr": failed to launch plugin: checksums did not match');
      expect(fs.existsSync(agent.socket)).toBe(false); // never served the Workload API

      const d = await doctor(agent.configFile);
      expect(d.code).toBe(1);
      const line = d.out.split('\n').find(l => /^FAIL\s+SPIRE plugin_checksum/.test(l));
      expect(line, d.out).toBeDefined();
      const actual = createHash('sha256').update(fs.readFileSync(path.join(REPO, 'bin', 'hexr-plugin.mjs'))).digest('hex');
      expect(line).toContain(`does not match sha256(${IMAGE_PLUGIN_CMD}) = ${actual}`);
      expect(line).toContain(`configured: ${wrong}`);
      expect(line).toContain('refuses to start');
      expect(line).toContain('checksums did not match');
    });
  });
});
