// A fake hexr-pid-mapper daemon: hexr.pidmapper.v1.PidMapper on a unix socket,
// answering from a table. Lets plugin tests run without /proc or markers.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProto, lookup } from '../../src/protos.js';
import { SeqWriter, seqFilePath } from '../../src/seq-file.js';
import { startTicks } from './pod.js';

export interface FakeDaemonOptions {
  /** pid → selector values; unknown PIDs answer found=false, []. */
  selectors?: Record<number, string[]>;
  /** Delay before answering, ms. */
  delayMs?: number;
  /** Fixed socket path (to restart a daemon on the same path). */
  socketPath?: string;
  /**
   * Serve WatchMap like the daemon: the whole map (the PIDs of `selectors`,
   * with their real start times), then a heartbeat every `heartbeatMs`.
   */
  feed?: boolean;
  heartbeatMs?: number;
}

export interface FakeDaemon {
  socketPath: string;
  dir: string | undefined;
  calls: { pid: number; max_wait_ms: number }[];
  selectors: Record<number, string[]>;
  delayMs: number;
  /** Stop sending on WatchMap streams, keeping them open (a hung daemon). */
  muted: boolean;
  /** Sends a delta on every open WatchMap stream. */
  push(u: { upserts?: { host_pid: number; start_time: string; selector_values: string[] }[]; removed?: number[] }): void;
  /** Open WatchMap streams. */
  readonly watchers: number;
  stop(): Promise<void>;
}

export async function startFakeDaemon(opts: FakeDaemonOptions = {}): Promise<FakeDaemon> {
  const dir = opts.socketPath ? undefined : mkdtempSync(join(tmpdir(), 'hexr-fd-'));
  const socketPath = opts.socketPath ?? join(dir!, 'd.sock');
  const server = new grpc.Server();
  const streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  let version = 1;
  let seq = 1n;
  const ownNs = /\d+/.exec(readlinkSync('/proc/self/ns/pid'))?.[0] ?? '0';
  // Like the daemon: the sequence file next to the socket, written before each change is sent.
  const seqFile = new SeqWriter(seqFilePath(socketPath), () => undefined);
  const instance = 'fa4edae3f0e1d2c3';
  const msg = (full: boolean, upserts: unknown[], removed: number[]): unknown => ({
    map_version: String(version),
    full,
    upserts,
    removed,
    pid_namespace: ownNs,
    instance,
    seq: String(seq),
    pending: [],
    busy_scopes: [],
    layout: 'kubelet',
    flat_scope: '',
    slots: [],
  });
  const beat = setInterval(() => {
    if (!fake.muted) for (const c of streams) c.write(msg(false, [], []));
  }, opts.heartbeatMs ?? 500);
  beat.unref();
  const fake: FakeDaemon = {
    socketPath,
    dir,
    calls: [],
    selectors: opts.selectors ?? {},
    delayMs: opts.delayMs ?? 0,
    muted: false,
    push(u) {
      version++;
      seq++;
      seqFile.write(instance, seq, 'all');
      for (const c of streams) c.write(msg(false, u.upserts ?? [], u.removed ?? []));
    },
    get watchers() {
      return streams.size;
    },
    stop: async () => {
      clearInterval(beat);
      seqFile.close();
      for (const c of streams) c.end();
      await new Promise<void>(resolve => {
        server.forceShutdown();
        resolve();
      });
      rmSync(socketPath, { force: true });
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  const svc = lookup<grpc.ServiceClientConstructor>(loadProto('hexr/pidmapper/v1/pidmapper.proto'), 'hexr.pidmapper.v1.PidMapper');
  server.addService(svc.service, {
    ...(opts.feed
      ? {
          WatchMap(call: grpc.ServerWritableStream<unknown, unknown>) {
            streams.add(call);
            call.on('cancelled', () => streams.delete(call));
            call.on('close', () => streams.delete(call));
            const upserts = Object.entries(fake.selectors).flatMap(([pid, selector_values]) => {
              const st = startTicks(Number(pid));
              return st === undefined ? [] : [{ host_pid: Number(pid), start_time: String(st), selector_values, scope: '' }];
            });
            call.write(msg(true, upserts, []));
          },
        }
      : {}),
    Attest(call: grpc.ServerUnaryCall<{ pid: number; max_wait_ms: number }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      fake.calls.push({ pid: call.request.pid, max_wait_ms: call.request.max_wait_ms });
      const values = fake.selectors[call.request.pid];
      const answer = (): void => cb(null, { selector_values: values ?? [], found: values !== undefined, map_version: '7' });
      if (fake.delayMs > 0) setTimeout(answer, fake.delayMs);
      else answer();
    },
  });
  rmSync(socketPath, { force: true });
  if (opts.feed) {
    seqFile.open(0o600);
    seqFile.write(instance, seq, 'all');
  }
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), err => (err ? reject(err) : resolve())),
  );
  return fake;
}
