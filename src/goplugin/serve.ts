// hashicorp/go-plugin transport for a gRPC plugin, SPIRE-agnostic
// (spire-plugin-protocol.md section 2). start(): check the launch env, bind an
// h2c gRPC server on a fresh unix socket, register the go-plugin internal
// services plus the caller's, then (and only then) write the handshake line
// to fd 1. close(): stop serving and remove the socket. `done` resolves when
// the host asked us to stop (GRPCController.Shutdown) or close() ran.
//
// stdout belongs to the handshake: from start() on, console.* and
// process.stdout.write go to stderr.
import { writeSync, unlinkSync, chmodSync } from 'node:fs';
import { Console } from 'node:console';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { checkLaunchEnv, handshakeLine, makeSocketPath, type Env } from './handshake.js';
import {
  brokerService,
  controllerService,
  healthService,
  OpenStreams,
  stdioService,
  type ConnInfo,
  type ServiceRegistration,
} from './internal-services.js';

export type { ServiceRegistration, ConnInfo };

export interface GoPluginServerOptions {
  /** Magic cookie; for SPIRE both are the plugin type, e.g. "WorkloadAttestor". */
  cookieKey: string;
  cookieValue: string;
  services: readonly ServiceRegistration[];
  /** Already carries whatever module field the caller wants. */
  log: Logger;
  env: Env;
  /** Where the handshake line goes; fd 1 except in tests. */
  stdoutFd?: number;
  /**
   * The host: our parent as the process started (process.ppid read before
   * anything slow). Default: process.ppid when start() begins.
   */
  parentPid?: number;
}

/** STOPPED: close() came first (SIGTERM, the host gone, a fatal error); not a failure. */
export type GoPluginErrorCode = 'NOT_A_PLUGIN_LAUNCH' | 'PROTOCOL_VERSION' | 'TLS_UNSUPPORTED' | 'SOCKET_PATH' | 'LISTEN_FAILED' | 'HANDSHAKE' | 'STOPPED';

export class GoPluginError extends Error {
  override readonly name = 'GoPluginError';
  constructor(
    readonly code: GoPluginErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** How long a graceful stop may take before open calls are cut. */
const GRACEFUL_STOP_MS = 300;
/** How often we look whether the host (our parent) is still there. */
const PARENT_POLL_MS = 500;
/** How often we try again to write the handshake to a full stdout pipe. */
const HANDSHAKE_RETRY_MS = 5;

export class GoPluginServer {
  private readonly log: Logger;
  private readonly connInfo = new Map<number, ConnInfo>();
  private readonly streams = new OpenStreams();
  private server: grpc.Server | undefined;
  private socket: string | undefined;
  private closing: Promise<void> | undefined;
  private parentWatch: NodeJS.Timeout | undefined;
  /** start()'s binding and handshake: a close() meanwhile waits for it, then undoes it. */
  private serving: Promise<void> | undefined;
  private resolveDone!: () => void;
  /** Resolves once the host sent Shutdown or close() finished. */
  readonly done: Promise<void>;
  private readonly ignoreSigint = (): void => {
    this.log.debug('ignoring SIGINT (the host unloads plugins through GRPCController.Shutdown)');
  };

  constructor(private readonly opts: GoPluginServerOptions) {
    this.log = opts.log;
    this.done = new Promise(resolve => {
      this.resolveDone = resolve;
    });
  }

  /** Path of the unix socket we listen on (after start()). */
  get socketPath(): string | undefined {
    return this.socket;
  }

  /** Latest ConnInfo the host sent down the broker stream for this service id. */
  brokerConnInfo(serviceId: number): ConnInfo | undefined {
    return this.connInfo.get(serviceId);
  }

  async start(): Promise<void> {
    const { env, cookieKey, cookieValue } = this.opts;
    const problem = checkLaunchEnv(env, cookieKey, cookieValue);
    if (problem) throw new GoPluginError(problem.code, problem.message);
    if (this.closing) throw new GoPluginError('STOPPED', 'stopped before it started');
    // Our parent is the host: watch it from before the handshake tells anyone
    // that we are ready. Taken after, a host killed as soon as it read the
    // line could leave us re-parented already, and we would watch our new
    // parent instead, serving nobody forever.
    this.watchParent(this.opts.parentPid ?? process.ppid);
    this.serving = this.serve();
    try {
      await this.serving;
    } catch (err) {
      await this.close(); // no socket file left behind, nothing left serving
      throw err;
    }
  }

  /**
   * Binds, registers the services and writes the handshake line. The server
   * accepts connections from the bind on; a host dials only once it has the
   * line.
   */
  private async serve(): Promise<void> {
    const env = this.opts.env;
    protectStdout();
    // grpc-js reports its own troubles through console.error: keep them as JSON lines.
    grpc.setLogger({ error: (...args: unknown[]) => this.log.debug({ grpc: args.map(String).join(' ') }, 'grpc-js') });
    process.on('SIGINT', this.ignoreSigint);

    let socket: string;
    try {
      socket = makeSocketPath(env);
    } catch (err) {
      throw new GoPluginError('SOCKET_PATH', err instanceof Error ? err.message : String(err));
    }
    unlinkQuietly(socket); // a stale file makes bind fail with EADDRINUSE

    const server = new grpc.Server({
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      // Channelz (gRPC's introspection service, which we do not serve) would
      // track every call: closures, a Date and counters per Attest.
      'grpc.enable_channelz': 0,
    });
    const builtin = [
      healthService(this.streams),
      brokerService(this.log, this.connInfo, this.streams, () => this.hostConnected()),
      stdioService(this.streams),
      controllerService(() => {
        this.log.debug('host requested shutdown');
        void this.close();
      }),
    ];
    for (const s of [...builtin, ...this.opts.services]) server.addService(s.definition, s.implementation);

    // Tighten the umask around bind so the socket never exists with wider permissions.
    const oldUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), err => {
          if (err) reject(new GoPluginError('LISTEN_FAILED', `cannot listen on unix socket ${socket}: ${err.message}`));
          else resolve();
        });
      });
    } finally {
      process.umask(oldUmask);
    }
    this.server = server;
    this.socket = socket;
    try {
      chmodSync(socket, 0o600);
    } catch (err) {
      this.log.warn({ error: (err as Error).message }, 'could not restrict the plugin socket to mode 0600');
    }
    await this.writeHandshake(handshakeLine(socket));
    this.log.debug({ socket }, 'plugin serving');
  }

  /**
   * Writes the handshake line to fd 1, waiting while the host's pipe is full:
   * Node makes a stdout pipe non-blocking, so a host slow to read gets EAGAIN
   * instead of a wait. Meanwhile the parent watch runs; if the host dies, we
   * stop (close()) instead of waiting for it forever.
   */
  private async writeHandshake(line: string): Promise<void> {
    let rest = Buffer.from(line);
    while (rest.length > 0) {
      if (this.closing) throw new GoPluginError('STOPPED', 'stopped before the host read the handshake line');
      try {
        rest = rest.subarray(writeSync(this.opts.stdoutFd ?? 1, rest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw new GoPluginError('HANDSHAKE', `cannot write the handshake line: ${(err as Error).message}`);
        await new Promise(resolve => setTimeout(resolve, HANDSHAKE_RETRY_MS));
      }
    }
  }

  /**
   * The host dialed us and opened its broker stream: nobody needs the socket
   * path any more (a go-plugin host dials once; the open connection does not
   * depend on the file). Removing it now is what keeps a plugin that the
   * kernel kills together with its host (SPIRE sets Pdeathsig=SIGKILL, which
   * cannot be caught) from leaving its socket file behind.
   */
  private hostConnected(): void {
    const socket = this.socket;
    if (socket === undefined || this.closing) return;
    unlinkQuietly(socket);
  }

  /**
   * A host that dies without taking us along (no Pdeathsig: other hosts,
   * other systems) leaves us re-parented: stop then, instead of serving
   * nobody forever.
   */
  private watchParent(parent: number): void {
    this.parentWatch = setInterval(() => {
      if (process.ppid === parent) return;
      this.log.warn({ parent_pid: parent, now: process.ppid }, 'host process is gone (parent changed); stopping');
      void this.close();
    }, PARENT_POLL_MS);
    this.parentWatch.unref();
  }

  /** Stops serving (graceful for a moment, then forced), removes the socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.parentWatch) clearInterval(this.parentWatch);
    await this.serving?.catch(() => undefined); // its handshake wait gives up once closing is set
    process.off('SIGINT', this.ignoreSigint); // after: a start still binding registers it

    const server = this.server;
    if (server) {
      this.streams.endAll();
      await new Promise<void>(resolve => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, GRACEFUL_STOP_MS);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.socket) unlinkQuietly(this.socket);
    this.resolveDone();
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // ENOENT: already gone
  }
}

let stdoutProtected = false;

/** Nothing but the handshake may reach fd 1: send console.* and process.stdout to stderr. */
function protectStdout(): void {
  if (stdoutProtected) return;
  stdoutProtected = true;
  globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });
  process.stdout.write = process.stderr.write.bind(process.stderr);
}
