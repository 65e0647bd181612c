// Composition root of the daemon: builds every part, starts them in order,
// and closes them in reverse order when `signal` aborts. The only module that
// knows all the others.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import { createAttester } from './attest.js';
import { configPlaces, type DaemonConfig } from './config.js';
import { debugRoutes } from './debug-routes.js';
import { HistoryWriter } from './history.js';
import { HttpServer } from './http-server.js';
import { createLayout } from './layout.js';
import { LocalApiServer } from './local-api.js';
import { MapFeed } from './map-feed.js';
import { createMetrics } from './metrics.js';
import { createProcfs } from './procfs.js';
import { Reconciler } from './reconciler.js';
import { DecisionStore } from './decision-store.js';
import { StateWriter } from './state-writer.js';
import { MarkerWatcher } from './watcher.js';
import { roleEventOf } from '../core/history.js';
import { SeqWriter, seqFilePath } from '../seq-file.js';
import { LoopDelayMonitor } from '../loop-delay.js';

export interface RunningDaemon {
  readonly reconciler: Reconciler;
  readonly watcher: MarkerWatcher;
  readonly debugAddress: string | undefined;
  readonly metricsAddress: string | undefined;
}

interface Closable {
  close(): Promise<void>;
}

export async function runDaemon(
  config: DaemonConfig,
  log: Logger,
  signal: AbortSignal,
  onStarted?: (d: RunningDaemon) => void,
): Promise<void> {
  const started: Closable[] = [];
  const metrics = createMetrics();
  const procfs = createProcfs({ root: config.procRoot });
  const layout = createLayout(config.layout);
  const state = new StateWriter(config.stateDir, (err, op) => {
    metrics.stateWriteErrors.inc();
    log.error({ [F.module]: 'state', [F.err]: err.message }, `enriched context: ${op} failed`);
  });
  try {
    state.prepare();
  } catch (err) {
    // Not fatal: attestation does not need the state files.
    log.error({ [F.err]: (err as Error).message, dir: config.stateDir }, 'state_dir cannot be created; enriched context files will not be written');
  }
  const store = new DecisionStore(config.stateDir, procfs.bootId(), (err, what) => {
    metrics.stateWriteErrors.inc();
    log.error({ [F.module]: 'decision-store', [F.err]: err.message }, `decision journal: ${what}`);
  });
  // Identity history (state_dir/history.jsonl): started first, closed last, so
  // that it frames every grant and removal with daemon_start / daemon_stop.
  const history =
    config.historyMaxBytes > 0
      ? new HistoryWriter({
          dir: config.stateDir,
          maxBytes: config.historyMaxBytes,
          maxFiles: config.historyMaxFiles,
          nodeName: config.nodeName,
          onLost: (n, err, first) => {
            metrics.historyWriteErrors.inc(n);
            if (first) log.error({ [F.module]: 'history', [F.err]: err.message, dir: config.stateDir }, 'identity history cannot be written; lost events are counted in hexr_history_write_errors_total');
          },
          onRecovered: () => log.info({ [F.module]: 'history', dir: config.stateDir }, 'identity history is written again'),
        })
      : undefined;
  const reconciler = new Reconciler({
    layout,
    procfs,
    containerContextDir: config.containerContextDir,
    markerMaxBytes: config.markerMaxBytes,
    exclusiveRoles: config.exclusiveRoles,
    startSlackMs: config.startSlackMs,
    podMarkerLimit: config.podMarkerLimit,
    podEventRate: config.podEventRate,
    pendingRetryMs: config.pendingRetryMs,
    livenessIntervalMs: config.livenessIntervalMs,
    resyncIntervalMs: config.resyncIntervalMs,
    state,
    store,
    nodeName: config.nodeName,
    log,
    metrics,
  });
  if (history) reconciler.onIdentityChange(c => history.record(roleEventOf(c.kind === 'grant' ? 'grant' : 'removal', c.cause, c.mapping, Number(c.inode) || undefined)));
  const watcher = new MarkerWatcher({
    layout,
    log,
    onPath: p => reconciler.notify(p),
    onError: err => {
      metrics.watcherErrors.inc();
      log.warn({ [F.module]: 'watcher', [F.err]: String(err) }, 'watcher error; the next resync heals missed events');
    },
    onFlood: () => metrics.watcherFloods.inc(),
    floodEventsPerSecond: config.dirFloodRate,
  });
  const loop = new LoopDelayMonitor();
  loop.start();
  started.push(loop);
  const attest = createAttester({ source: reconciler, procfs, defaultWaitMs: config.attestWaitMs, metrics });
  const seqFile = new SeqWriter(seqFilePath(config.socketPath), err => log.error({ [F.module]: 'local-api', [F.err]: err.message }, 'cannot write the sequence file; plugins ask the daemon for every PID'));
  const feed = new MapFeed(reconciler.snapshot(), {
    pidNs: procfs.readPidNs(process.pid),
    layout: layout.kind,
    flatScope: layout.flatScope,
    instance: randomBytes(8).toString('hex'),
    flight: () => reconciler.flightState(),
    onSeq: (instance, seq, slots) => seqFile.write(instance, seq, slots),
  });
  reconciler.onPublish(u => feed.publish(u));
  const api = new LocalApiServer(config.socketPath, attest, log, feed, config.socketGid);
  let debug: HttpServer | undefined;
  let metricsServer: HttpServer | undefined;

  try {
    if (history) {
      history.start();
      started.push(history);
    }
    fs.mkdirSync(path.dirname(config.socketPath), { recursive: true, mode: 0o755 });
    seqFile.open(config.socketGid !== undefined ? 0o640 : 0o600, config.socketGid);
    started.push({ close: () => Promise.resolve(seqFile.close()) });
    feed.start();
    started.push(feed);
    // Watch first, so nothing written during the initial scan is missed.
    await watcher.start();
    started.push(watcher);
    started.push(state); // closed after the reconciler: its last files are written
    await reconciler.start();
    started.push(reconciler);
    await api.start();
    started.push(api);
    if (config.debugAddr) {
      debug = new HttpServer(
        config.debugAddr,
        debugRoutes({
          snapshot: () => reconciler.snapshot(),
          markers: () => reconciler.markers(),
          explain: pid => reconciler.explain(pid),
          ready: () => reconciler.ready,
          status: resetLoop => ({
            node_name: config.nodeName ?? null,
            config: configPlaces(config),
            layout: config.layout,
            watch_root: layout.watchRoot,
            watcher_armed: watcher.armed,
            watched_context_dirs: watcher.watchedDirs,
            flooded_context_dirs: watcher.floodedDirs,
            work: reconciler.workStatus(),
            event_loop_delay: loop.read(resetLoop),
            feed_subscribers: feed.size,
            map_version: reconciler.snapshot().version,
            mapped: reconciler.snapshot().size,
            processes: reconciler.processCount,
            last_resync_ms: Math.round(reconciler.lastResyncMs * 100) / 100,
            resync_count: reconciler.resyncCount,
            memory_mb: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round((v / 2 ** 20) * 10) / 10])),
          }),
        }),
      );
      await debug.start();
      started.push(debug);
    }
    if (config.metricsAddr) {
      metricsServer = new HttpServer(config.metricsAddr, async (_m, url) =>
        url.pathname === '/metrics'
          ? { status: 200, body: await metrics.registry.metrics(), type: metrics.registry.contentType }
          : { status: 404, body: 'not found\n', type: 'text/plain' },
      );
      await metricsServer.start();
      started.push(metricsServer);
    }
    log.info(
      {
        layout: config.layout.kind,
        watch_root: layout.watchRoot,
        socket: config.socketPath,
        debug_addr: debug?.address ?? 'off',
        metrics_addr: metricsServer?.address ?? 'off',
        mapped: reconciler.snapshot().size,
      },
      'daemon started',
    );
    onStarted?.({ reconciler, watcher, debugAddress: debug?.address, metricsAddress: metricsServer?.address });
    if (!signal.aborted) await new Promise<void>(resolve => signal.addEventListener('abort', () => resolve(), { once: true }));
    log.info('shutting down');
  } finally {
    for (const c of started.reverse()) {
      try {
        await c.close();
      } catch (err) {
        log.warn({ [F.err]: String(err) }, 'error while closing');
      }
    }
  }
}
