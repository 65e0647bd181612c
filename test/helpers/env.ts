// Which test tiers this machine can run. A tier that cannot run skips with a
// printed reason; CI (root, Linux, Go preinstalled at /usr/local/go) runs them all.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { expect } from 'vitest';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function rootReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (PID namespaces, cgroups, bind mounts)';
  for (const c of ['unshare', 'nsenter', 'mount']) if (!has(c)) return `needs ${c} (util-linux)`;
  if (!fs.existsSync('/sys/fs/cgroup')) return 'needs /sys/fs/cgroup';
  return undefined;
}

export const ROOT_SKIP = rootReason();
export const GO_SKIP = fs.existsSync('/usr/local/go/bin/go') || has('go') ? undefined : 'needs the Go toolchain (Go >= 1.25 at /usr/local/go; test/go is a Go module)';

/** The kernel reports per-thread CPU time (src/loop-delay.ts's on-CPU figure is there). */
export const HAS_SCHEDSTAT = fs.existsSync('/proc/thread-self/schedstat');
/** What an on-CPU event-loop figure must look like on this machine. */
export const ON_CPU_FIGURE: unknown = HAS_SCHEDSTAT ? expect.any(Number) : undefined;

/**
 * The environment for a child process: ours with `extra` over it (undefined
 * removes a variable), without our NODE_OPTIONS: vitest's loaders must not leak
 * into the child.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, NODE_OPTIONS: undefined, ...extra })) if (v !== undefined) env[k] = v;
  return env;
}

/** Prints why a tier is skipped, once per file. */
export function skipNote(tier: string, reason: string | undefined): boolean {
  if (reason !== undefined) process.stderr.write(`[skip] ${tier}: ${reason}\n`);
  return reason !== undefined;
}

/** Polls `fn` until it returns a value that is not undefined/false, or times out. */
export async function eventually<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise(r => setTimeout(r, 25));
  }
}
