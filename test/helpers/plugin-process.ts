// Spawns `node dist/main.js plugin` the way a go-plugin host does and
// collects its stdout, stderr lines and exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { MAIN_JS, REPO } from './build.js';
import { childEnv } from './env.js';

export interface PluginProcess {
  proc: ChildProcess;
  stdout: () => string;
  stderrLines: () => string[];
  /** First stdout line (the handshake), with the time it arrived. */
  handshake: Promise<{ line: string; atMs: number }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>;
  startedAtMs: number;
  kill(): void;
}

export const PLUGIN_ENV = { WorkloadAttestor: 'WorkloadAttestor', PLUGIN_PROTOCOL_VERSIONS: '1', PLUGIN_MIN_PORT: '10000', PLUGIN_MAX_PORT: '25000' };

export function spawnPlugin(env: Record<string, string | undefined>, onHandshake?: (line: string) => void, nodeArgs: string[] = []): PluginProcess {
  const clean = childEnv(env);
  const startedAtMs = performance.now();
  const proc = spawn(process.execPath, [...nodeArgs, MAIN_JS, 'plugin'], { cwd: REPO, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const handshake = new Promise<{ line: string; atMs: number }>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      const before = out;
      out += d.toString();
      if (!before.includes('\n') && out.includes('\n')) {
        const line = out.slice(0, out.indexOf('\n') + 1);
        onHandshake?.(line);
        resolve({ line, atMs: performance.now() });
      }
    });
    proc.once('exit', code => reject(new Error(`plugin exited (${code}) before the handshake; stderr: ${err}`)));
  });
  handshake.catch(() => undefined);
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>(resolve =>
    proc.once('exit', (code, signal) => resolve({ code, signal, atMs: performance.now() })),
  );
  return {
    proc,
    stdout: () => out,
    stderrLines: () => err.split('\n').filter(l => l !== ''),
    handshake,
    exited,
    startedAtMs,
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(proc.pid, 'SIGKILL');
    },
  };
}

/** Socket path from a handshake line `1|1|unix|<path>|grpc|`. */
export function socketFromHandshake(line: string): string {
  const parts = line.trim().split('|');
  if (parts[2] !== 'unix' || !parts[3]) throw new Error(`unexpected handshake: ${line}`);
  return parts[3];
}
