// Client of the daemon's local API (hexr.pidmapper.v1.PidMapper) over its unix
// socket. One channel per socket path, reused across calls. Reconnect backoff
// is kept short (<= 1 s) so that the plugin recovers by itself soon after the
// daemon comes back; while the daemon is down, calls fail at once with
// UNAVAILABLE (no wait-for-ready), so Attest never hangs on a dead socket.
import * as grpc from '@grpc/grpc-js';
import { loadProto, lookup } from '../protos.js';
import type { AttestResponseMsg, MapUpdateMsg } from '../pidmapper-wire.js';
import type { Logger } from '../log.js';
import { PluginError } from './errors.js';
import { SeqReader, seqFilePath } from '../seq-file.js';
import { MapCache, type Verdict } from './map-cache.js';

export type DaemonAttestResponse = AttestResponseMsg;

type PidMapperClient = grpc.Client & {
  Attest(
    req: { pid: number; max_wait_ms: number },
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: DaemonAttestResponse) => void,
  ): grpc.ClientUnaryCall;
  WatchMap(req: Record<string, never>): grpc.ClientReadableStream<MapUpdateMsg>;
};

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
  'grpc.enable_channelz': 0, // per-call bookkeeping nobody reads
  // HTTP/2's default 64 KB window made the whole state (3 MB at 11,000
  // mappings) cross in ~50 round trips of WINDOW_UPDATE between two busy
  // event loops: up to a second under load, during which every Attest went to
  // the daemon. Let it arrive in one go.
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
};

export interface AttestCall {
  pid: number;
  maxWaitMs: number;
  deadline: Date;
  /** Aborted when the caller (SPIRE) gave up. */
  signal?: AbortSignal;
}

interface Entry {
  client: PidMapperClient;
  cache: MapCache;
  seq: SeqReader;
  inFlight: number;
  /** No longer wanted: close once the last in-flight call settles. */
  retired: boolean;
}

/**
 * Channels by socket path. A channel that a reconfigure made obsolete is
 * closed only after its in-flight calls settle: grpc-js fails calls still
 * waiting for a connection when their channel closes.
 */
export class DaemonClients {
  private readonly entries = new Map<string, Entry>();
  private ctor: grpc.ServiceClientConstructor | undefined;

  /**
   * `onCopied`: called when a copy of the daemon's state is complete; what it
   * returns is added to that log line.
   */
  constructor(
    private readonly log?: Logger,
    private readonly onCopied?: () => Record<string, unknown> | undefined,
  ) {}

  /** What the local copy of the daemon's state says about `pid` (see MapCache.lookup). */
  local(socketPath: string, pid: number, maxAgeMs: number): Verdict {
    return this.entry(socketPath).cache.lookup(pid, maxAgeMs);
  }

  /** Resolves true once the copy has reached the daemon's sequence `seq` (false after `ms`). */
  caughtUp(socketPath: string, seq: bigint, ms: number): Promise<boolean> {
    return this.entry(socketPath).cache.waitFor(seq, ms);
  }

  /** Asks the daemon at `socketPath`; rejects with a PluginError. */
  attest(socketPath: string, call: AttestCall): Promise<DaemonAttestResponse> {
    if (call.signal?.aborted) return Promise.reject(new PluginError('CANCELLED', 'attestation cancelled by the caller'));
    const entry = this.entry(socketPath);
    entry.inFlight++;
    return new Promise<DaemonAttestResponse>((resolve, reject) => {
      const pending = entry.client.Attest(
        { pid: call.pid, max_wait_ms: call.maxWaitMs },
        new grpc.Metadata(),
        { deadline: call.deadline },
        (err, res) => {
          call.signal?.removeEventListener('abort', onAbort);
          if (err) reject(translate(err, socketPath));
          else resolve(res ?? { selector_values: [], found: false, map_version: '0', waited_ms: 0 });
        },
      );
      const onAbort = (): void => pending.cancel();
      call.signal?.addEventListener('abort', onAbort, { once: true });
    }).finally(() => {
      entry.inFlight--;
      if (entry.retired && entry.inFlight === 0) entry.client.close();
    });
  }

  /** Retires channels to sockets other than `keep` (after a reconfigure). */
  retainOnly(keep: string): void {
    for (const [path, e] of this.entries) {
      if (path !== keep) this.retire(path, e);
    }
    this.entry(keep); // connect now and start syncing the map copy
  }

  /** Retires every channel; in-flight calls still settle first. */
  close(): void {
    for (const [path, e] of this.entries) this.retire(path, e);
  }

  private retire(path: string, e: Entry): void {
    this.entries.delete(path);
    e.retired = true;
    e.cache.close();
    e.seq.close();
    if (e.inFlight === 0) e.client.close();
  }

  private entry(socketPath: string): Entry {
    let e = this.entries.get(socketPath);
    if (!e) {
      this.ctor ??= lookup<grpc.ServiceClientConstructor>(loadProto('hexr/pidmapper/v1/pidmapper.proto'), 'hexr.pidmapper.v1.PidMapper');
      const client = new this.ctor(`unix:${socketPath}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as PidMapperClient;
      const seq = new SeqReader(seqFilePath(socketPath));
      const cache = new MapCache(() => client.WatchMap({}), seq, undefined, undefined, (mappings, ms, again) => {
        const extra = this.onCopied?.();
        this.log?.info({ daemon_socket: socketPath, mappings, ms: Math.round(ms), again, ...extra }, "copy of the daemon's state complete");
      });
      e = { client, cache, seq, inFlight: 0, retired: false };
      this.entries.set(socketPath, e);
      cache.start();
    }
    return e;
  }
}

function translate(err: grpc.ServiceError, socketPath: string): PluginError {
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      return new PluginError('DAEMON_UNAVAILABLE', `pid-mapper daemon unavailable at ${socketPath}: ${err.details.replace(/\s*Resolution note:\s*$/, '')}`);
    case grpc.status.DEADLINE_EXCEEDED:
      return new PluginError('DAEMON_TIMEOUT', `pid-mapper daemon at ${socketPath} did not answer in time`);
    case grpc.status.CANCELLED:
      return new PluginError('CANCELLED', 'attestation cancelled');
    default:
      return new PluginError('DAEMON_REJECTED', `pid-mapper daemon: ${err.details}`, err.code);
  }
}
