// The README's "Quick start on one host", pasted into a shell as a newcomer
// would: the block is read from README.md itself, so the two cannot drift.
//
// It runs in a fresh copy of this working tree (what a clone holds: tracked
// and untracked-but-not-ignored files, no dist/), inside private mount and
// network namespaces: /tmp and /run are empty tmpfs mounts and 127.0.0.1 is
// its own, so the fixed paths and ports of the defaults (/tmp/hexr-context,
// /run/hexr, 127.0.0.1:8787) meet nothing else on this machine.
//
// One substitution, and only one: `npm ci` is a no-op, with node_modules
// linked from this working tree (tests have no network, and reinstalling here
// would pull node_modules from under concurrently running tests). Every other
// line runs as written, `set -e`: a failing command fails the test.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/build.js';
import { ROOT_SKIP, skipNote } from '../helpers/env.js';

const HAVE = (cmd: string): boolean => (process.env['PATH'] ?? '').split(':').some(d => fs.existsSync(path.join(d, cmd)));
const skip = skipNote('integration (README quick start)', ROOT_SKIP ?? (HAVE('git') && HAVE('ip') ? undefined : 'needs git and ip (iproute2)'));

/** The first ```sh block under "## Quick start on one host". */
export function quickStartBlock(readme: string): string {
  const at = readme.indexOf('\n## Quick start on one host\n');
  if (at < 0) throw new Error('README has no "## Quick start on one host" section');
  const next = readme.indexOf('\n## ', at + 1);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at, next < 0 ? undefined : next));
  if (!m) throw new Error('the quick start has no ```sh block');
  return m[1] as string;
}

const HARNESS = `set -e
repo=$1
# The working tree stays reachable at /mnt once /tmp and /run are covered (a CI clone may live under /tmp).
mkdir -p /mnt
mount --bind "$repo" /mnt
cd /mnt
mapfile -d '' files < <(git -c safe.directory='*' ls-files -z --cached --others --exclude-standard)
ip link set lo up
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /tmp/clone
for f in "\${files[@]}"; do if [ -e "$f" ]; then cp -a --parents -- "$f" /tmp/clone/; fi; done
ln -s /mnt/node_modules /tmp/clone/node_modules
cd /tmp/clone
npm() { if [ "$1" = ci ]; then echo "[quick-start test] npm ci: node_modules linked from the working tree" >&2; else command npm "$@"; fi; }
`;

const TEARDOWN = `
echo "[quick-start test] done" >&2
kill $(jobs -p) 2>/dev/null || true
wait || true
`;

describe.skipIf(skip)('README quick start', () => {
  it('works when pasted: the daemon maps both role processes, pidmap, explain, history and doctor answer', async () => {
    const block = quickStartBlock(fs.readFileSync(path.join(REPO, 'README.md'), 'utf8'));
    for (const step of ['npm ci', 'npm start', 'run-as', 'wait', 'pidmap', 'explain', 'history', 'doctor']) expect(block).toContain(step);

    const child = spawn('unshare', ['--mount', '--net', '--propagation', 'private', 'bash', '-c', `${HARNESS}${block}${TEARDOWN}`, 'quick-start', REPO], {
      detached: true, // its own process group: everything it starts is killed with it
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env['PATH'] ?? ''}`, HOME: process.env['HOME'] ?? '/root', npm_config_update_notifier: 'false', LANG: 'C.UTF-8' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>(resolve => child.once('close', code => resolve(code)));
    let code: number | null;
    try {
      code = await Promise.race([exited, new Promise<null>(r => setTimeout(() => r(null), 170_000))]);
    } finally {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        /* already gone */
      }
      await exited;
    }
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);

    // wait: ready, both mapped.
    expect(stderr, context).toContain('hexr-pid-mapper wait: the daemon at 127.0.0.1:8787 is ready; 2 mapped processes');
    // pidmap: the table of the README.
    const row = (role: string): RegExpExecArray | null =>
      new RegExp(`^(\\d+)\\s+(\\d+)\\s+acme\\s+content-crew\\s+${role}\\s+-\\s+/tmp/hexr-context/content-crew-${role}\\.json$`, 'm').exec(stdout);
    const researcher = row('researcher');
    const writer = row('writer');
    expect(researcher, context).not.toBeNull();
    expect(writer, context).not.toBeNull();
    expect(stdout).toMatch(/^HOST PID\s+CPID\s+TENANT\s+AGENT\s+ROLE\s+POD\s+MARKER$/m);
    expect(stdout).toMatch(/^2 mapped, map version \d+$/m);
    const writerPid = (writer as RegExpExecArray)[1];
    // explain: the writer's PID, with its selectors.
    expect(stdout, context).toMatch(new RegExp(`^PID ${writerPid}: `, 'm'));
    expect(stdout).toMatch(/^ {2}selectors: .*process-role:writer/m);
    // history: the writer's grant.
    expect(stdout, context).toMatch(new RegExp(`^\\S+ \\S+ {2}grant +mapped +acme +content-crew +writer +${writerPid} `, 'm'));
    // doctor: it found the daemon `npm start` runs, without flags, and its socket.
    expect(stdout, context).toMatch(/^PASS\s+daemon\s+running at 127\.0\.0\.1:8787; checking its configuration: flat layout, socket \/run\/hexr\/pid-mapper\.sock, state_dir \/run\/hexr\/pid-map$/m);
    expect(stdout).toMatch(/^PASS\s+local API socket\s+\/run\/hexr\/pid-mapper\.sock accepts connections/m);
    expect(stdout).toMatch(/^PASS\s+context root\s+flat layout at \/tmp\/hexr-context$/m);
    // Nothing went wrong on the way.
    expect(stderr).not.toMatch(/warning|Error|^\s+at /m);
  }, 200_000);
});
