// Every subcommand speaks the same way: --help prints its usage on stdout and
// exits 0; a bad argument prints one line saying what is wrong, then the
// usage, on stderr, and exits 2; nothing ever prints a stack trace.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, MAIN_JS } from '../helpers/build.js';

const exec = promisify(execFile);
/** Nothing answers here: commands that would ask a daemon fail fast. */
const NO_DAEMON = { HEXR_DEBUG_ADDR: '127.0.0.1:1', PATH: process.env['PATH'] ?? '' };

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [MAIN_JS, ...args], { env: NO_DAEMON, timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const STACK = /^\s+at .+\(?.*:\d+:\d+\)?$/m;
const COMMANDS = ['daemon', 'plugin', 'pidmap', 'explain', 'wait', 'history', 'doctor', 'run-as', 'registrations'];

beforeAll(async () => {
  await ensureBuilt();
}, 120_000);

describe.each(COMMANDS)('hexr-pid-mapper %s', cmd => {
  it.each(['--help', '-h'])('%s prints its usage on stdout and exits 0', async flag => {
    const r = await cli(cmd, flag);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: hexr-pid-mapper ${cmd}\\b`));
    expect(r.stderr).toBe('');
  });

  it('an unknown option: one line saying so, then the usage, exit 2, no stack trace', async () => {
    const r = await cli(cmd, '--no-such-flag');
    expect(r.code).toBe(2);
    const [first, second] = r.stderr.split('\n');
    expect(first).toBe(`hexr-pid-mapper ${cmd}: unknown option --no-such-flag`);
    expect(second).toMatch(new RegExp(`^usage: hexr-pid-mapper ${cmd}\\b`));
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout).toBe('');
  });

  it('`help <command>` is the same as --help', async () => {
    const [a, b] = await Promise.all([cli('help', cmd), cli(cmd, '--help')]);
    expect(a).toEqual(b);
  });
});

describe('bad values, each with one clear line and the usage (exit 2)', () => {
  it.each([
    [['pidmap', '--addr'], 'hexr-pid-mapper pidmap: option --addr needs a value'],
    [['pidmap', '--json=yes'], 'hexr-pid-mapper pidmap: option --json takes no value'],
    [['pidmap', 'extra'], 'hexr-pid-mapper pidmap: unexpected argument "extra"'],
    [['explain'], 'hexr-pid-mapper explain: a PID is required'],
    [['explain', 'abc'], 'hexr-pid-mapper explain: "abc" is not a PID (an integer from 1 to 4194304, as in /proc)'],
    [['explain', '0'], 'hexr-pid-mapper explain: "0" is not a PID (an integer from 1 to 4194304, as in /proc)'],
    [['explain', '1', '2'], 'hexr-pid-mapper explain: one PID at a time (got 2 arguments)'],
    [['wait', '--count', 'two'], 'hexr-pid-mapper wait: --count "two" is not a number of processes'],
    [['wait', '--timeout', 'soon'], 'hexr-pid-mapper wait: --timeout "soon" is not a duration (e.g. 30s, 2m)'],
    [['history', '--pid', 'x'], 'hexr-pid-mapper history: --pid "x" is not a PID'],
    [['history', '--at', 'teatime'], 'hexr-pid-mapper history: --at "teatime" is not a time (e.g. 14:03, 2026-11-23 14:03, 1h)'],
    [['history', '--at', '1h', '--since', '2h'], 'hexr-pid-mapper history: --at and --since do not go together'],
    [['run-as', '--agent', 'a', '--tenant', 't', '--role', 'r'], 'hexr-pid-mapper run-as: a command is required after --'],
    [['run-as', '--tenant', 't', '--role', 'r', '--', 'true'], 'hexr-pid-mapper run-as: --agent is required'],
    [['doctor', '--layout', 'sideways'], 'hexr-pid-mapper doctor: layout: "sideways" must be "flat" or "kubelet"'],
    [['daemon', '--layout'], 'hexr-pid-mapper daemon: option --layout needs a value'],
    [['registrations', '--format', 'xml', 'f.json'], 'hexr-pid-mapper registrations: --format must be entries or clusterspiffeid, got "xml"'],
  ])('%j', async (args, line) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    const [first, second] = r.stderr.split('\n');
    expect(first).toBe(line);
    expect(second).toMatch(/^usage: hexr-pid-mapper /);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('escapes control characters of a bad argument instead of writing them to the terminal', async () => {
    const r = await cli('explain', '\u001b[2J');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('hexr-pid-mapper explain: "\\x1b[2J" is not a PID (an integer from 1 to 4194304, as in /proc)');
  });
});

describe('hexr-pid-mapper itself', () => {
  it('prints the command list on stdout for help / --help (exit 0), on stderr with no command (exit 2)', async () => {
    for (const a of ['help', '--help', '-h']) {
      const r = await cli(a);
      expect(r.code, a).toBe(0);
      expect(r.stdout).toMatch(/^usage: hexr-pid-mapper <command>/);
      for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    }
    const none = await cli();
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^usage: hexr-pid-mapper <command>/);
  });

  it('names an unknown command in one line, then the usage (exit 2)', async () => {
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('hexr-pid-mapper: unknown command "frobnicate"');
    const h = await cli('help', 'frobnicate');
    expect(h.code).toBe(2);
    expect(h.stderr.split('\n')[0]).toBe('hexr-pid-mapper help: unknown command "frobnicate"');
  });

  it('says in one line, without a stack trace, when the daemon cannot be reached (exit 1)', async () => {
    for (const args of [['pidmap'], ['explain', '1'], ['wait', '--timeout', '300ms']]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/127\.0\.0\.1:1/);
      expect(r.stderr).not.toMatch(STACK);
    }
  });
});
