// The real SPIRE binaries (and the Go test programs built with them), from
// scripts/build-spire.sh: built once into a versioned cache directory, then
// reused (the script only checks their --version).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from '../../helpers/build.js';

export const SPIRE_VERSION = '1.13.3';

export interface SpireBins {
  dir: string;
  server: string;
  agent: string;
  /** test/go/cmd/hexr-workload: a Workload API client that runs as a role process. */
  workload: string;
}

let pending: Promise<SpireBins> | undefined;

/** Runs scripts/build-spire.sh (a no-op when the binaries exist); its progress goes to our stderr. */
export function ensureSpire(): Promise<SpireBins> {
  pending ??= new Promise<SpireBins>((resolve, reject) => {
    const child = spawn('bash', [join(REPO, 'scripts', 'build-spire.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', code => {
      const dir = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !dir.startsWith('/')) return reject(new Error(`scripts/build-spire.sh failed (exit ${code})`));
      resolve({ dir, server: join(dir, 'spire-server'), agent: join(dir, 'spire-agent'), workload: join(dir, 'hexr-workload') });
    });
  });
  return pending;
}
