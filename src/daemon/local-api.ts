// The daemon's local attestation API: hexr.pidmapper.v1.PidMapper on a unix
// socket, mode 0600 (only root, i.e. the SPIRE agent's plugin, may ask).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadProto, lookup } from '../protos.js';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import type { Attester } from './attest.js';
import type { MapFeed, MapUpdateMsg } from './map-feed.js';
import { socketAccepts } from './socket-probe.js';

type ServiceCtor = grpc.ServiceClientConstructor;

export function pidMapperService(): grpc.ServiceDefinition {
  return lookup<ServiceCtor>(loadProto('hexr/pidmapper/v1/pidmapper.proto'), 'hexr.pidmapper.v1.PidMapper').service;
}

export class LocalApiServer {
  private server: grpc.Server | undefined;
  private readonly log: Logger;
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, MapUpdateMsg>>();

  constructor(
    private readonly socketPath: string,
    private readonly attest: Attester,
    log: Logger,
    private readonly feed?: MapFeed,
    /** When set, the socket is group-accessible (0660) for this GID. */
    private readonly socketGid?: number,
  ) {
    this.log = log.child({ [F.module]: 'local-api' });
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    if (fs.existsSync(this.socketPath)) {
      if (await socketAccepts(this.socketPath)) throw new Error(`another process is serving on ${this.socketPath}`);
      fs.rmSync(this.socketPath, { force: true });
    }
    const server = new grpc.Server({ 'grpc.enable_channelz': 0 }); // channelz: per-call bookkeeping nobody reads
    server.addService(pidMapperService(), {
      Attest: (call: grpc.ServerUnaryCall<{ pid: number; max_wait_ms: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.attest(call.request.pid, call.request.max_wait_ms).then(
          r => cb(null, { selector_values: r.selector_values, found: r.found, map_version: String(r.map_version), waited_ms: r.waited_ms }),
          (err: unknown) => {
            this.log.error({ [F.err]: err, [F.hostPid]: call.request.pid }, 'attest failed');
            cb({ code: grpc.status.INTERNAL, details: 'internal error' });
          },
        );
      },
      WatchMap: (call: grpc.ServerWritableStream<unknown, MapUpdateMsg>) => {
        const feed = this.feed;
        if (!feed) {
          call.destroy({ name: 'Error', message: 'map feed disabled', code: grpc.status.UNIMPLEMENTED } as grpc.ServiceError);
          return;
        }
        const sub = feed.subscribe((u, written) => call.write(u, written));
        call.on('drain', () => sub.drained());
        this.streams.add(call);
        const done = (): void => {
          sub.close();
          this.streams.delete(call);
        };
        call.on('cancelled', done);
        call.on('close', done);
        call.on('error', done);
      },
    });
    // The socket is bound in a private (0700) directory next to its final
    // path, given its mode there, then renamed into place: it never exists at
    // the public path with wider permissions, and the process umask (shared
    // with everything else the daemon writes meanwhile) is never touched.
    const priv = fs.mkdtempSync(path.join(path.dirname(this.socketPath), '.hexr-bind-'));
    try {
      fs.chmodSync(priv, 0o700);
      const tmp = path.join(priv, 's');
      await new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix:${tmp}`, grpc.ServerCredentials.createInsecure(), err => (err ? reject(err) : resolve()));
      });
      if (this.socketGid !== undefined) {
        fs.chownSync(tmp, process.getuid?.() ?? 0, this.socketGid);
        fs.chmodSync(tmp, 0o660);
      } else {
        fs.chmodSync(tmp, 0o600);
      }
      fs.renameSync(tmp, this.socketPath);
    } catch (err) {
      server.forceShutdown();
      throw err;
    } finally {
      fs.rmSync(priv, { recursive: true, force: true });
    }
    this.server = server;
    this.log.info({ socket: this.socketPath }, 'local attestation API listening');
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const c of this.streams) c.end(); // never-ending streams would hold tryShutdown open
    this.streams.clear();
    await new Promise<void>(resolve => {
      const t = setTimeout(() => {
        s.forceShutdown();
        resolve();
      }, 2000);
      s.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    fs.rmSync(this.socketPath, { force: true });
  }
}
