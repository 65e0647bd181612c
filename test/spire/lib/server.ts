// A real spire-server (scripts/spire/server.conf): SQLite, memory KeyManager,
// join_token NodeAttestor, trust domain example.org, on loopback.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from '../../helpers/env.js';
import type { SpireBins } from './bins.js';
import { SERVER_CONF } from './configs.js';
import { LoggedProcess, cleanEnv } from './proc.js';

const run = promisify(execFile);

/** A free loopback TCP port (released just before SPIRE binds it). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>(r => srv.close(() => r()));
  return port;
}

export class SpireServer {
  readonly dir: string;
  readonly socket: string;
  port = 0;
  private proc: LoggedProcess | undefined;

  constructor(
    readonly bins: SpireBins,
    root: string,
  ) {
    this.dir = join(root, 'server');
    this.socket = join(this.dir, 'api.sock');
  }

  get env(): Record<string, string> {
    return cleanEnv({ HEXR_SPIRE_SERVER_DIR: this.dir, HEXR_SPIRE_SERVER_PORT: String(this.port) });
  }

  async start(): Promise<void> {
    fs.mkdirSync(join(this.dir, 'data'), { recursive: true });
    this.port = await freePort();
    this.proc = new LoggedProcess([this.bins.server, 'run', '-config', SERVER_CONF, '-expandEnv'], { env: this.env });
    const proc = this.proc;
    await eventually(
      async () => {
        if (!proc.running) throw new Error(`spire-server exited:\n${proc.tail()}`);
        await this.cli(['healthcheck']);
        return true;
      },
      60_000,
      'spire-server healthy',
    );
  }

  /** `spire-server SUBCOMMAND... -socketPath S ARGS...`; rejects with its output on a non-zero exit. */
  async cli(sub: string[], args: string[] = []): Promise<string> {
    try {
      const { stdout } = await run(this.bins.server, [...sub, '-socketPath', this.socket, ...args], { env: this.env });
      return stdout;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`spire-server ${sub.join(' ')} ${args.join(' ')}: ${e.stderr || e.stdout || e.message}`, { cause: err });
    }
  }

  /** A join token whose agent also gets the alias `spiffeId` (an entry parented to the agent). */
  async joinToken(spiffeId: string): Promise<string> {
    const out = await this.cli(['token', 'generate'], ['-spiffeID', spiffeId, '-ttl', '3600']);
    const m = /Token:\s*(\S+)/.exec(out);
    if (!m) throw new Error(`no token in: ${out}`);
    return m[1]!;
  }

  /** Writes the trust bundle (PEM) for agents' trust_bundle_path. */
  async writeBundle(file: string): Promise<void> {
    fs.writeFileSync(file, await this.cli(['bundle', 'show']));
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  log(): string {
    return this.proc?.tail(200) ?? '';
  }
}
