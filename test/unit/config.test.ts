import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, KEYS, configPlaces, loadDaemonConfig, type DaemonConfig } from '../../src/daemon/config.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-config-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
function configFile(content: unknown): string {
  const p = path.join(tmp, `config-${n++}.json`);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

function problemsOf(args: string[], env: Record<string, string | undefined> = {}): readonly string[] {
  try {
    loadDaemonConfig(args, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadDaemonConfig: defaults', () => {
  it('uses the documented defaults when nothing is given', () => {
    const c = loadDaemonConfig([], {});
    expect(c).toEqual({
      layout: { kind: 'kubelet', kubeletRoot: '/var/lib/kubelet', volume: 'hexr-context' },
      containerContextDir: '/tmp/hexr-context',
      stateDir: '/run/hexr/pid-map',
      socketPath: '/run/hexr/pid-mapper.sock',
      debugAddr: { host: '127.0.0.1', port: 8787 },
      metricsAddr: { host: '127.0.0.1', port: 8788 },
      procRoot: '/',
      resyncIntervalMs: 30_000,
      livenessIntervalMs: 2000,
      pendingRetryMs: 1000,
      attestWaitMs: 500,
      markerMaxBytes: 4096,
      exclusiveRoles: true,
      startSlackMs: 50,
      podMarkerLimit: 1024,
      podEventRate: 1000,
      dirFloodRate: 2000,
      logLevel: 'info',
      nodeName: undefined,
      socketGid: undefined,
      historyMaxBytes: 4_194_304,
      historyMaxFiles: 5,
    } satisfies DaemonConfig);
  });

  it('resolves socket_group from a GID or a group name, and reports an unknown group', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-grp-'));
    try {
      const groups = path.join(dir, 'group');
      fs.writeFileSync(groups, 'root:x:0:\nspire:x:1234:agent\n');
      const env = { HEXR_GROUP_FILE: groups };
      expect(loadDaemonConfig(['--socket-group', '4321'], env).socketGid).toBe(4321);
      expect(loadDaemonConfig(['--socket-group', 'spire'], env).socketGid).toBe(1234);
      expect(() => loadDaemonConfig(['--socket-group', 'nobody-here'], env)).toThrow(/socket_group: "nobody-here" is not a GID or a group/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has a flag, an env var and a default for every key', () => {
    for (const [key, spec] of Object.entries(KEYS)) {
      expect(spec.flag, key).toMatch(/^[a-z][a-z-]+$/);
      expect(spec.env, key).toMatch(/^HEXR_[A-Z_]+$/);
      expect(typeof spec.def, key).toBe('string');
    }
  });

  it('reads the node name from NODE_NAME (downward API)', () => {
    expect(loadDaemonConfig([], { NODE_NAME: 'node-1' }).nodeName).toBe('node-1');
  });

  it('reads its environment only from the env argument, never from process.env', () => {
    const saved = process.env['HEXR_LAYOUT'];
    process.env['HEXR_LAYOUT'] = 'bogus';
    try {
      expect(loadDaemonConfig([], {}).layout.kind).toBe('kubelet');
    } finally {
      if (saved === undefined) delete process.env['HEXR_LAYOUT'];
      else process.env['HEXR_LAYOUT'] = saved;
    }
  });
});

describe('loadDaemonConfig: precedence flags > env > config file > defaults', () => {
  it('takes a value from the config file over the default', () => {
    const file = configFile({ log_level: 'debug' });
    expect(loadDaemonConfig(['--config', file], {}).logLevel).toBe('debug');
  });

  it('takes the environment over the config file', () => {
    const file = configFile({ log_level: 'debug' });
    expect(loadDaemonConfig(['--config', file], { HEXR_LOG_LEVEL: 'warn' }).logLevel).toBe('warn');
  });

  it('takes a flag over the environment and the config file', () => {
    const file = configFile({ log_level: 'debug' });
    expect(loadDaemonConfig(['--config', file, '--log-level', 'error'], { HEXR_LOG_LEVEL: 'warn' }).logLevel).toBe('error');
  });

  it('accepts the --flag=value form', () => {
    expect(loadDaemonConfig(['--log-level=trace'], {}).logLevel).toBe('trace');
  });

  it('resolves each key independently across layers', () => {
    const file = configFile({ resync_interval: '5s', attest_wait: '100ms', state_dir: '/file/state' });
    const c = loadDaemonConfig(['--config', file, '--attest-wait', '1s'], { HEXR_STATE_DIR: '/env/state' });
    expect(c.resyncIntervalMs).toBe(5000);
    expect(c.attestWaitMs).toBe(1000);
    expect(c.stateDir).toBe('/env/state');
  });

  it('finds the config file through HEXR_CONFIG', () => {
    const file = configFile({ layout: 'flat', context_root: '/srv/ctx' });
    expect(loadDaemonConfig([], { HEXR_CONFIG: file }).layout).toEqual({ kind: 'flat', contextRoot: '/srv/ctx' });
  });

  it('prefers --config over HEXR_CONFIG', () => {
    const a = configFile({ log_level: 'debug' });
    const b = configFile({ log_level: 'warn' });
    expect(loadDaemonConfig(['--config', a], { HEXR_CONFIG: b }).logLevel).toBe('debug');
  });

  it('accepts JSON numbers and booleans in the config file', () => {
    const file = configFile({ marker_max_bytes: 8192, exclusive_roles: false, resync_interval: 2500 });
    const c = loadDaemonConfig(['--config', file], {});
    expect(c.markerMaxBytes).toBe(8192);
    expect(c.exclusiveRoles).toBe(false);
    expect(c.resyncIntervalMs).toBe(2500);
  });

  it('builds a flat layout from flags', () => {
    const c = loadDaemonConfig(['--layout', 'flat', '--context-root', '/tmp/ctx/'], {});
    expect(c.layout).toEqual({ kind: 'flat', contextRoot: '/tmp/ctx' });
  });

  it('flat layout: container_context_dir defaults to context_root (a host process sees the root at its own path)', () => {
    expect(loadDaemonConfig(['--layout', 'flat', '--context-root', '/srv/ctx'], {}).containerContextDir).toBe('/srv/ctx');
    expect(loadDaemonConfig(['--layout', 'flat'], {}).containerContextDir).toBe('/tmp/hexr-context');
    // Given explicitly, from any layer, it wins.
    expect(loadDaemonConfig(['--layout', 'flat', '--context-root', '/srv/ctx', '--container-context-dir', '/ctx'], {}).containerContextDir).toBe('/ctx');
    expect(loadDaemonConfig(['--layout', 'flat', '--context-root', '/srv/ctx'], { HEXR_CONTAINER_CONTEXT_DIR: '/ctx' }).containerContextDir).toBe('/ctx');
    // The kubelet layout keeps the in-pod default.
    expect(loadDaemonConfig(['--layout', 'kubelet'], {}).containerContextDir).toBe('/tmp/hexr-context');
  });

  it('takes replacement defaults (a running daemon\'s configuration) below every other layer', () => {
    const daemon = { layout: 'flat', context_root: '/srv/ctx', socket: '/srv/api.sock', state_dir: '/srv/state' };
    const c = loadDaemonConfig([], {}, daemon);
    expect(c.layout).toEqual({ kind: 'flat', contextRoot: '/srv/ctx' });
    expect(c.socketPath).toBe('/srv/api.sock');
    expect(c.containerContextDir).toBe('/srv/ctx');
    expect(loadDaemonConfig(['--socket', '/flag.sock'], { HEXR_STATE_DIR: '/env' }, daemon)).toMatchObject({ socketPath: '/flag.sock', stateDir: '/env' });
  });

  it('reports the places it uses as config-file keys, which load back to the same places', () => {
    for (const args of [[], ['--layout', 'flat', '--context-root', '/srv/ctx', '--debug-addr', '[::1]:9', '--metrics-addr', 'off']]) {
      const c = loadDaemonConfig(args, {});
      const again = loadDaemonConfig([], {}, configPlaces(c));
      expect(again).toEqual(c);
    }
    expect(configPlaces(loadDaemonConfig(['--layout', 'flat'], {}))).toEqual({
      layout: 'flat',
      context_root: '/tmp/hexr-context',
      container_context_dir: '/tmp/hexr-context',
      state_dir: '/run/hexr/pid-map',
      socket: '/run/hexr/pid-mapper.sock',
      debug_addr: '127.0.0.1:8787',
      metrics_addr: '127.0.0.1:8788',
      proc_root: '/',
    });
  });

  it('bounds the identity history settings', () => {
    expect(loadDaemonConfig(['--history-max-bytes', '0', '--history-max-files', '0'], {})).toMatchObject({ historyMaxBytes: 0, historyMaxFiles: 0 });
    expect(problemsOf(['--history-max-bytes', '100'])).toEqual(['history_max_bytes: "100" must be 0 (off) or at least 4096']);
    expect(problemsOf(['--history-max-bytes', '1M', '--history-max-files', '101'])).toEqual([
      'history_max_bytes: "1M" must be an integer in [0, 1073741824]',
      'history_max_files: "101" must be an integer in [0, 100]',
    ]);
  });
});

describe('loadDaemonConfig: listen addresses', () => {
  it.each<[string, { host: string; port: number } | undefined]>([
    ['127.0.0.1:9000', { host: '127.0.0.1', port: 9000 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
    ['[::1]:8787', { host: '::1', port: 8787 }],
    ['off', undefined],
    ['', undefined],
  ])('parses debug_addr %j', (v, want) => {
    expect(loadDaemonConfig(['--debug-addr', v], {}).debugAddr).toEqual(want);
  });

  it.each(['8787', ':8787', '127.0.0.1:65536', '127.0.0.1:-1', 'host:port', '::1:8787', 'a b:1', '127.0.0.1:123456'])('rejects metrics_addr %j', v => {
    const problems = problemsOf(['--metrics-addr', v]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('metrics_addr');
  });
});

describe('loadDaemonConfig: problems', () => {
  it('lists every problem at once', () => {
    const problems = problemsOf(
      [
        '--layout',
        'kubelet',
        '--kubelet-root',
        'relative/kubelet',
        '--context-volume',
        '../evil',
        '--resync-interval',
        '5x',
        '--attest-wait',
        '60s',
        '--debug-addr',
        'nope',
        '--marker-max-bytes',
        '12',
        '--exclusive-roles',
        'yes',
      ],
      { HEXR_LOG_LEVEL: 'verbose', HEXR_STATE_DIR: 'state', HEXR_START_SLACK: '-1s' },
    );
    const want = ['kubelet_root', 'context_volume', 'resync_interval', 'attest_wait', 'debug_addr', 'marker_max_bytes', 'exclusive_roles', 'log_level', 'state_dir', 'start_slack'];
    for (const key of want) expect(problems.some(p => p.startsWith(`${key}:`)), key).toBe(true);
    expect(problems).toHaveLength(want.length);
  });

  it('puts every problem into the error message', () => {
    try {
      loadDaemonConfig(['--log-level', 'loud', '--socket', 'rel.sock'], {});
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('log_level');
      expect((err as Error).message).toContain('socket');
      expect((err as Error).name).toBe('ConfigError');
    }
  });

  it('rejects an unknown layout', () => {
    expect(problemsOf(['--layout', 'docker'])).toEqual(['layout: "docker" must be "flat" or "kubelet"']);
  });

  it('rejects / as the flat context root', () => {
    expect(problemsOf(['--layout', 'flat', '--context-root', '/'])).toEqual(['context_root: must not be /']);
  });

  it('rejects a socket path longer than a unix socket address allows', () => {
    expect(problemsOf(['--socket', '/run/' + 's'.repeat(110)])[0]).toContain('socket');
  });

  it.each(['0', '255', '1048577', '4096.5', 'abc', ''])('rejects marker_max_bytes %j', v => {
    expect(problemsOf(['--marker-max-bytes', v])[0]).toContain('marker_max_bytes');
  });

  it.each([
    ['resync-interval', '99ms'],
    ['resync-interval', '2h'],
    ['liveness-interval', '10ms'],
    ['pending-retry', '1ms'],
    ['attest-wait', '31s'],
    ['start-slack', 'soon'],
  ])('rejects --%s %s as out of range', (flag, v) => {
    expect(problemsOf([`--${flag}`, v])[0]).toContain(flag.replace(/-/g, '_'));
  });

  it('accepts the boundary values of durations', () => {
    const c = loadDaemonConfig(['--resync-interval', '100ms', '--attest-wait', '0', '--liveness-interval', '10m'], {});
    expect([c.resyncIntervalMs, c.attestWaitMs, c.livenessIntervalMs]).toEqual([100, 0, 600_000]);
  });

  it('throws a ConfigError for an unknown flag', () => {
    expect(problemsOf(['--no-such-flag', 'x'])[0]).toContain('--no-such-flag');
  });

  it('throws a ConfigError for a positional argument', () => {
    expect(problemsOf(['stray'])).toHaveLength(1);
  });

  it('reports a missing config file and keeps collecting other problems', () => {
    const problems = problemsOf(['--config', path.join(tmp, 'missing.json'), '--log-level', 'x']);
    expect(problems.some(p => p.startsWith(`config file ${path.join(tmp, 'missing.json')}`))).toBe(true);
    expect(problems.some(p => p.startsWith('log_level'))).toBe(true);
  });

  it('reports a config file that is not JSON', () => {
    const file = configFile('layout = "flat"');
    expect(problemsOf(['--config', file])[0]).toContain(`config file ${file}`);
  });

  it.each(['[]', 'null', '"flat"', '3'])('reports a config file whose JSON is %s (not an object)', text => {
    const file = configFile(text);
    expect(problemsOf(['--config', file])).toEqual([`config file ${file}: not a JSON object`]);
  });

  it('reports each unknown config file key', () => {
    const file = configFile({ layuot: 'flat', sockets: '/x' });
    expect(problemsOf(['--config', file])).toEqual(['config file: unknown key "layuot"', 'config file: unknown key "sockets"']);
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])('reports the inherited property name %j as an unknown config key', key => {
    const file = configFile(`{${JSON.stringify(key)}: "x"}`);
    expect(problemsOf(['--config', file])).toEqual([`config file: unknown key "${key}"`]);
  });

  it('reports a config file value of the wrong shape', () => {
    const file = configFile({ debug_addr: { host: 'x', port: 1 } });
    expect(problemsOf(['--config', file])[0]).toContain('debug_addr');
  });
});

describe('loadDaemonConfig: immutability', () => {
  it('returns a frozen config, nested objects included', () => {
    const c = loadDaemonConfig([], {});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.layout)).toBe(true);
    expect(Object.isFrozen(c.debugAddr)).toBe(true);
    expect(Object.isFrozen(c.metricsAddr)).toBe(true);
    expect(() => {
      (c.layout as { kind: string }).kind = 'flat';
    }).toThrow(TypeError);
  });
});
