// A real spire-agent (scripts/spire/agent.conf + optionally the shipped
// WorkloadAttestor "hexr" block), attested with a join token, Workload API
// socket in a directory of ours, started inside the image-like mount layout
// (image-layout.ts) so that plugin_cmd and plugin_checksum are the shipped ones.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from '../../helpers/env.js';
import type { SpireBins } from './bins.js';
import { agentConfig } from './configs.js';
import { inImageLayout } from './image-layout.js';
import { LoggedProcess, cleanEnv } from './proc.js';
import type { SpireServer } from './server.js';

const run = promisify(execFile);

export interface AgentOptions {
  /** Directory name under the root (several agents can share a root). */
  name: string;
  /** WorkloadAttestor block(s) to add next to "unix" (e.g. configs.hexrBlock), or none: unix attestor only. */
  attestors?: string;
  /** SPIFFE ID the join token aliases the agent to (parent of the entries). */
  alias: string;
  /** Extra `spire-agent run` flags, e.g. ['-logLevel', 'INFO']. */
  runArgs?: string[];
  /** Extra environment for the agent (and so for the plugins it starts). */
  env?: Record<string, string>;
}

export class SpireAgent {
  readonly dir: string;
  readonly socketDir: string;
  readonly socket: string;
  readonly configFile: string;
  private proc: LoggedProcess | undefined;

  constructor(
    readonly bins: SpireBins,
    readonly server: SpireServer,
    root: string,
    readonly opts: AgentOptions,
  ) {
    this.dir = join(root, opts.name);
    this.socketDir = join(this.dir, 'sockets');
    this.socket = join(this.socketDir, 'agent.sock');
    this.configFile = join(this.dir, 'agent.conf');
  }

  get env(): Record<string, string> {
    return cleanEnv({
      HEXR_SPIRE_AGENT_DIR: join(this.dir, 'data'),
      HEXR_SPIRE_SOCKET_DIR: this.socketDir,
      HEXR_SPIRE_SERVER_PORT: String(this.server.port),
      HEXR_SPIRE_BUNDLE: join(this.dir, 'bundle.pem'),
      ...this.opts.env,
    });
  }

  /** Writes the config, token and bundle; does not start anything. */
  async prepare(): Promise<string> {
    fs.mkdirSync(join(this.dir, 'data'), { recursive: true });
    fs.mkdirSync(join(this.dir, 'stage'), { recursive: true });
    fs.mkdirSync(this.socketDir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(this.configFile, agentConfig(this.opts.attestors));
    await this.server.writeBundle(join(this.dir, 'bundle.pem'));
    return this.server.joinToken(this.opts.alias);
  }

  /** Starts `spire-agent run` and returns at once (see ready()). */
  async launch(): Promise<LoggedProcess> {
    const token = await this.prepare();
    const argv = inImageLayout(
      [this.bins.agent, 'run', '-config', this.configFile, '-expandEnv', '-joinToken', token, ...(this.opts.runArgs ?? [])],
      join(this.dir, 'stage'),
    );
    this.proc = new LoggedProcess(argv, { env: this.env, cwd: this.dir });
    return this.proc;
  }

  /** Starts the agent and waits until `spire-agent healthcheck` passes. */
  async start(): Promise<void> {
    const proc = await this.launch();
    await eventually(
      async () => {
        if (!proc.running) throw new Error(`spire-agent exited:\n${proc.tail()}`);
        return fs.existsSync(this.socket) && (await this.healthcheck()).code === 0;
      },
      60_000,
      'spire-agent healthy',
    );
  }

  /**
   * Waits until the agent holds an X509-SVID for each of these SPIFFE IDs (its
   * cache manager logs "SVID updated" at debug; at info level only the
   * manager's "Creating X509-SVID" shows, just before): entries reach a new
   * agent at its first sync with the server, sync_interval (5 s) after it starts.
   */
  async svidsCached(spiffeIds: string[], opts: { timeoutMs?: number; msg?: string } = {}): Promise<void> {
    const msg = opts.msg ?? 'SVID updated';
    await eventually(
      () => {
        const have = new Set(this.logs().filter(l => l['msg'] === msg).map(l => l['spiffe_id'] as string));
        return spiffeIds.every(id => have.has(id));
      },
      opts.timeoutMs ?? 30_000,
      `agent cache holds ${spiffeIds.join(', ')}`,
    );
  }

  /** `spire-agent healthcheck -socketPath S`: exit code and output. */
  async healthcheck(): Promise<{ code: number; out: string }> {
    try {
      const { stdout, stderr } = await run(this.bins.agent, ['healthcheck', '-socketPath', this.socket, '-verbose'], { env: this.env });
      return { code: 0, out: stdout + stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The agent's JSON log lines (logrus: level, msg, time, fields). */
  logs(): Record<string, any>[] {
    return this.proc?.json() ?? [];
  }

  /** Lines our plugin wrote, as the agent re-logged them. */
  pluginLogs(): Record<string, any>[] {
    return this.logs().filter(l => l['plugin_name'] === 'hexr' && typeof l['timestamp'] === 'string');
  }

  lines(): string[] {
    return this.proc?.lines ?? [];
  }

  tail(n = 60): string {
    return this.proc?.tail(n) ?? '';
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}
