// Review findings of issue 10, item 6, each on the real part: the local API
// must not touch the process umask while it binds, the watcher must not wait
// forever for chokidar, and daemon and plugin must agree on socket paths.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDaemonConfig } from '../../src/daemon/config.js';
import { HttpServer, hostAllowed } from '../../src/daemon/http-server.js';
import { createLayout } from '../../src/daemon/layout.js';
import { LocalApiServer } from '../../src/daemon/local-api.js';
import { MarkerWatcher } from '../../src/daemon/watcher.js';
import { createLogger } from '../../src/log.js';
import { buildPluginConfig } from '../../src/plugin/config-service.js';
import { MAX_SOCKET_PATH_BYTES } from '../../src/socket-path.js';
import { eventually } from '../helpers/env.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) });
const dirs: string[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexr-parts-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('LocalApiServer.start', () => {
  it('leaves the process umask alone while it binds: files written meanwhile keep their mode, the socket is 0600', async () => {
    const dir = tmp();
    const old = process.umask(0o022);
    try {
      const api = new LocalApiServer(path.join(dir, 'api.sock'), () => Promise.resolve({ selector_values: [], found: false, map_version: 0, waited_ms: 0 }), silent);
      const started = api.start(); // suspended in the bind
      fs.writeFileSync(path.join(dir, 'meanwhile.json'), '{}', { mode: 0o644 });
      await started;
      expect(fs.statSync(path.join(dir, 'meanwhile.json')).mode & 0o777).toBe(0o644);
      expect(fs.statSync(path.join(dir, 'api.sock')).mode & 0o777).toBe(0o600);
      expect(process.umask()).toBe(0o022);
      expect(fs.readdirSync(dir).sort()).toEqual(['api.sock', 'meanwhile.json']); // no leftover bind directory
      await api.close();
    } finally {
      process.umask(old);
    }
  });
});

describe('MarkerWatcher.start', () => {
  it('does not wait forever for chokidar\'s initial scan: it goes on and reports it', async () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'pods'));
    const errors: unknown[] = [];
    const stuck = (): never => Object.assign(new EventEmitter(), { close: () => Promise.resolve() }) as never; // never emits 'ready'
    const w = new MarkerWatcher({
      layout: createLayout({ kind: 'kubelet', kubeletRoot: root, volume: 'hexr-context' }),
      log: silent,
      onPath: () => undefined,
      onError: e => errors.push(e),
      readyTimeoutMs: 100,
      watchFn: stuck,
    });
    const t0 = performance.now();
    await w.start();
    expect(performance.now() - t0).toBeLessThan(8000); // not the default 10 s (READY_TIMEOUT_MS), nor forever
    expect(w.armed).toBe(true);
    expect(String(errors[0])).toMatch(/did not finish its initial scan .* within 100 ms/);
    await w.close();
  });
});

describe('MarkerWatcher: context directories found by its poll', () => {
  // Found while chasing a flaky test: a context directory that the periodic
  // poll attached before chokidar reported it was watched from then on, but a
  // marker written before that stayed unseen until the next resync.
  it('reports the directory when it starts watching it, so markers written before are read', async () => {
    const root = tmp();
    const layout = createLayout({ kind: 'kubelet', kubeletRoot: root, volume: 'hexr-context' });
    const ctx = path.join(root, 'pods', '0b6f3c1e-1111-4a2b-9c3d-5e6f7a8b9c0d', 'volumes', 'kubernetes.io~empty-dir', 'hexr-context');
    fs.mkdirSync(path.join(root, 'pods'));
    const seen: string[] = [];
    // chokidar that never reports anything: only the poll finds the directory.
    const silentFsw = (): never => {
      const e = Object.assign(new EventEmitter(), { close: () => Promise.resolve() });
      setImmediate(() => e.emit('ready'));
      return e as never;
    };
    const w = new MarkerWatcher({ layout, log: silent, onPath: p => seen.push(p), onError: () => undefined, rootPollMs: 20, watchFn: silentFsw });
    await w.start();
    try {
      // A pod starts: its context directory appears with a marker already in it.
      fs.mkdirSync(ctx, { recursive: true });
      fs.writeFileSync(path.join(ctx, 'early.json'), '{}');
      await eventually(() => w.watchedDirs >= 1, 5000, 'the poll attaches the directory');
      await eventually(() => seen.includes(ctx) || seen.includes(path.join(ctx, 'early.json')), 2000, 'the directory reported for a scan');
    } finally {
      await w.close();
    }
  });
});

describe('socket path limits', () => {
  it('are the same for the daemon\'s socket and the plugin\'s daemon_socket (107 bytes)', () => {
    const at = (n: number): string => `/${'s'.repeat(n - 1)}`;
    const daemonOk = (p: string): boolean => {
      try {
        loadDaemonConfig(['--socket', p], {});
        return true;
      } catch {
        return false;
      }
    };
    const pluginOk = (p: string): boolean => buildPluginConfig({ hcl_configuration: `daemon_socket = "${p}"` }).config !== undefined;
    expect(MAX_SOCKET_PATH_BYTES).toBe(107);
    for (const n of [100, 104, 107]) {
      expect(daemonOk(at(n)), `daemon, ${n} bytes`).toBe(true);
      expect(pluginOk(at(n)), `plugin, ${n} bytes`).toBe(true);
    }
    expect(daemonOk(at(108))).toBe(false);
    expect(pluginOk(at(108))).toBe(false);
  });
});

describe('the debug and metrics listeners', () => {
  it('answer only requests addressed to an IP literal or localhost (no DNS rebinding)', async () => {
    const server = new HttpServer({ host: '127.0.0.1', port: 0 }, () => ({ status: 200, body: 'ok\n', type: 'text/plain' }));
    await server.start();
    try {
      const get = (host: string): Promise<number> =>
        new Promise((resolve, reject) => {
          const [h, port] = (server.address as string).split(':');
          const req = http.get({ host: h, port: Number(port), path: '/live', headers: { host } }, res => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
        });
      for (const ok of ['127.0.0.1:8787', 'localhost:8787', 'LOCALHOST', '[::1]:8787', '10.1.2.3']) expect(await get(ok), ok).toBe(200);
      for (const bad of ['evil.example:8787', 'attacker.test', '127.0.0.1.nip.io:8787', 'localhost.evil.example']) expect(await get(bad), bad).toBe(403);
      expect(hostAllowed(undefined)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('stream a long reply whole, in order, with backpressure and without piling up listeners', async () => {
    const chunk = (i: number): string => `${String(i).padStart(6, '0')}${'x'.repeat(64 * 1024 - 6)}`;
    const server = new HttpServer({ host: '127.0.0.1', port: 0 }, () => ({
      status: 200,
      body: (async function* () {
        for (let i = 0; i < 160; i++) {
          if (i % 16 === 0) await new Promise(r => setImmediate(r));
          yield chunk(i);
        }
      })(),
    }));
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    await server.start();
    try {
      const text = await (await fetch(`http://${server.address}/`)).text();
      expect(text.length).toBe(160 * 64 * 1024);
      for (let i = 0; i < 160; i += 37) expect(text.slice(i * 64 * 1024, i * 64 * 1024 + 6)).toBe(String(i).padStart(6, '0'));
      await new Promise(r => setImmediate(r));
      expect(warnings.map(w => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
      await server.close();
    }
  });
});
