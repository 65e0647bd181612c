// A long-running child process whose output lines are kept (SPIRE server and
// agent): JSON lines parsed, stopped with SIGTERM (SIGKILL after a grace period).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { childEnv } from '../../helpers/env.js';

export class LoggedProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(argv: string[], opts: SpawnOptions) {
    const [cmd, ...args] = argv;
    this.child = spawn(cmd!, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise(resolve => this.child.once('close', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Log lines that are JSON objects. */
  json(): Record<string, any>[] {
    return this.lines.flatMap(l => {
      if (!l.startsWith('{')) return [];
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return [];
      }
    });
  }

  tail(n = 40): string {
    return this.lines.slice(-n).join('\n');
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The environment for SPIRE processes (and so for the plugin they start): ours, minus what must not leak in. */
export function cleanEnv(extra: Record<string, string>): Record<string, string> {
  return childEnv({ WorkloadAttestor: undefined, ...extra });
}
