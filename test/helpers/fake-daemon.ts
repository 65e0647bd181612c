// A fake hexr-pid-mapper daemon: hexr.pidmapper.v1.PidMapper on a unix socket,
// answering from a table. Lets plugin tests run without /proc or markers.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProto, lookup } from '../../src/protos.js';

export interface FakeDaemonOptions {
  /** pid → selector values; unknown PIDs answer found=false, []. */
  selectors?: Record<number, string[]>;
  /** Delay before answering, ms. */
  delayMs?: number;
  /** Fixed socket path (to restart a daemon on the same path). */
  socketPath?: string;
}

export interface FakeDaemon {
  socketPath: string;
  dir: string | undefined;
  calls: { pid: number; max_wait_ms: number }[];
  selectors: Record<number, string[]>;
  delayMs: number;
  stop(): Promise<void>;
}

export async function startFakeDaemon(opts: FakeDaemonOptions = {}): Promise<FakeDaemon> {
  const dir = opts.socketPath ? undefined : mkdtempSync(join(tmpdir(), 'hexr-fd-'));
  const socketPath = opts.socketPath ?? join(dir!, 'd.sock');
  const server = new grpc.Server();
  const fake: FakeDaemon = {
    socketPath,
    dir,
    calls: [],
    selectors: opts.selectors ?? {},
    delayMs: opts.delayMs ?? 0,
    stop: async () => {
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
    Attest(call: grpc.ServerUnaryCall<{ pid: number; max_wait_ms: number }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      fake.calls.push({ pid: call.request.pid, max_wait_ms: call.request.max_wait_ms });
      const values = fake.selectors[call.request.pid];
      const answer = (): void => cb(null, { selector_values: values ?? [], found: values !== undefined, map_version: '7' });
      if (fake.delayMs > 0) setTimeout(answer, fake.delayMs);
      else answer();
    },
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), err => (err ? reject(err) : resolve())),
  );
  return fake;
}
