// Client of the daemon's local API (hexr.pidmapper.v1.PidMapper) over its unix
// socket. One channel per socket path, reused across calls. Reconnect backoff
// is kept short (<= 1 s) so that the plugin recovers by itself soon after the
// daemon comes back; while the daemon is down, calls fail at once with
// UNAVAILABLE (no wait-for-ready), so Attest never hangs on a dead socket.
import * as grpc from '@grpc/grpc-js';
import { loadProto, lookup } from '../protos.js';
import { PluginError } from './errors.js';

export interface DaemonAttestResponse {
  selector_values: string[];
  found: boolean;
  map_version: string;
}

type PidMapperClient = grpc.Client & {
  Attest(
    req: { pid: number; max_wait_ms: number },
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: DaemonAttestResponse) => void,
  ): grpc.ClientUnaryCall;
};

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
};

export interface AttestCall {
  pid: number;
  maxWaitMs: number;
  deadline: Date;
  /** Aborted when the caller (SPIRE) gave up. */
  signal?: AbortSignal;
}

export class DaemonClients {
  private readonly clients = new Map<string, PidMapperClient>();
  private ctor: grpc.ServiceClientConstructor | undefined;

  /** Asks the daemon at `socketPath`; rejects with a PluginError. */
  attest(socketPath: string, call: AttestCall): Promise<DaemonAttestResponse> {
    const client = this.client(socketPath);
    return new Promise((resolve, reject) => {
      if (call.signal?.aborted) {
        reject(new PluginError('CANCELLED', 'attestation cancelled by the caller'));
        return;
      }
      const pending = client.Attest(
        { pid: call.pid, max_wait_ms: call.maxWaitMs },
        new grpc.Metadata(),
        { deadline: call.deadline },
        (err, res) => {
          call.signal?.removeEventListener('abort', onAbort);
          if (err) reject(translate(err, socketPath));
          else resolve(res ?? { selector_values: [], found: false, map_version: '0' });
        },
      );
      const onAbort = (): void => pending.cancel();
      call.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closes channels to sockets other than `keep` (after a reconfigure). */
  retainOnly(keep: string): void {
    for (const [path, c] of this.clients) {
      if (path !== keep) {
        c.close(); // in-flight calls still complete
        this.clients.delete(path);
      }
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(socketPath: string): PidMapperClient {
    let c = this.clients.get(socketPath);
    if (!c) {
      this.ctor ??= lookup<grpc.ServiceClientConstructor>(loadProto('hexr/pidmapper/v1/pidmapper.proto'), 'hexr.pidmapper.v1.PidMapper');
      c = new this.ctor(`unix:${socketPath}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as PidMapperClient;
      this.clients.set(socketPath, c);
    }
    return c;
  }
}

function translate(err: grpc.ServiceError, socketPath: string): PluginError {
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      return new PluginError('DAEMON_UNAVAILABLE', `pid-mapper daemon unavailable at ${socketPath}: ${err.details}`);
    case grpc.status.DEADLINE_EXCEEDED:
      return new PluginError('DAEMON_TIMEOUT', `pid-mapper daemon at ${socketPath} did not answer in time`);
    case grpc.status.CANCELLED:
      return new PluginError('CANCELLED', 'attestation cancelled');
    default:
      return new PluginError('DAEMON_REJECTED', `pid-mapper daemon: ${err.details}`, err.code);
  }
}
