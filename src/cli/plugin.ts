// `hexr-pid-mapper plugin`: the SPIRE external WorkloadAttestor. Started by
// the SPIRE agent (plugin_cmd); speaks go-plugin over gRPC on a unix socket
// and forwards Attest to the daemon's local API. Resolves with the exit code
// once the host has unloaded us (GRPCController.Shutdown) or on SIGTERM.
//
// Startup cost matters (the agent waits for the handshake line): the launch
// environment is checked before gRPC, protos or pino are loaded.
import type { Env } from './context.js';
import type { LoopDelay } from '../loop-delay.js';
import { checkLaunchEnv } from '../goplugin/handshake.js';
import { printHelp, usageError, wantsHelp } from './args.js';

/** SPIRE uses the plugin type as both cookie key and value. */
export const PLUGIN_TYPE = 'WorkloadAttestor';
/** Exit status after an unhandled error (sysexits.h). */
export const EX_SOFTWARE = 70;

const USAGE = `usage: hexr-pid-mapper plugin

Runs as a SPIRE external WorkloadAttestor; the SPIRE agent starts it. In the
agent's configuration (daemonset/spire-agent-hexr.conf):

  WorkloadAttestor "hexr" {
    plugin_cmd      = "/opt/hexr/bin/hexr-plugin.mjs"   # the launcher in the spire-agent image
    plugin_checksum = "<sha256 of that file>"
    plugin_data { daemon_socket = "/run/hexr/pid-mapper.sock" }
  }
`;

export async function pluginCommand(args: string[], env: Env): Promise<number> {
  // The host that started us, read before the slow part (loading gRPC and the
  // protos): if it dies meanwhile, we are re-parented and must notice it.
  const parentPid = process.ppid;
  if (wantsHelp(args)) return printHelp(USAGE);
  // SPIRE passes plugin_args: a word (e.g. "plugin" through the launcher) is
  // only warned about below, but an option we do not have is a mistake.
  const flag = args.find(a => a.startsWith('-') && a !== '-');
  if (flag !== undefined) return usageError('plugin', USAGE, `unknown option ${flag}`);
  const problem = checkLaunchEnv(env, PLUGIN_TYPE, PLUGIN_TYPE);
  if (problem?.code === 'NOT_A_PLUGIN_LAUNCH') {
    process.stderr.write(problem.message);
    return 1;
  }

  const [{ createLogger }, { GoPluginServer, GoPluginError }, cfg, { DaemonClients }, { initService }, { workloadAttestorService, newAttestAnswers }, { LoopDelayMonitor }] =
    await Promise.all([
      import('../log.js'),
      import('../goplugin/serve.js'),
      import('../plugin/config-service.js'),
      import('../plugin/daemon-client.js'),
      import('../plugin/init-service.js'),
      import('../plugin/workload-attestor.js'),
      import('../loop-delay.js'),
    ]);

  const root = createLogger({ level: 'info' });
  const loop = new LoopDelayMonitor();
  loop.start();
  // pino children do not follow later level changes of their parent: keep them all.
  const loggers = [root];
  const logFor = (module: string): typeof root => {
    const l = root.child({ '@module': module });
    loggers.push(l);
    return l;
  };
  const log = logFor('plugin');
  if (args.length > 0) log.warn({ args: args.join(' ') }, 'ignoring unexpected plugin arguments');

  // An unexpected error leaves the plugin in a state nobody reasoned about:
  // stop serving and exit non-zero (EX_SOFTWARE), so that the agent fails
  // attestation closed and its health check shows it, rather than keep
  // answering from that state.
  let fatal = false;
  const serving: { server?: InstanceType<typeof GoPluginServer> } = {};
  const onUnhandled = (err: unknown): void => {
    log.error({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'unhandled error: the plugin stops');
    fatal = true;
    void serving.server?.close();
  };
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);

  const store = new cfg.ConfigStore();
  // The event-loop delay of the start-up (from here, once the modules are
  // loaded, to the first complete copy of the daemon's state) goes on the
  // first copy's line; the exit line has the rest.
  const loopFields = (d: LoopDelay): Record<string, number | undefined> => ({ event_loop_delay_max_ms: d.max_ms, event_loop_delay_max_on_cpu_ms: d.max_on_cpu_ms });
  let startingUp = true;
  const daemon = new DaemonClients(logFor('daemon-client'), () => {
    if (!startingUp) return undefined;
    startingUp = false;
    return loopFields(loop.read(true));
  });
  const answers = newAttestAnswers();
  store.onChange(c => daemon.retainOnly(c.daemonSocket));

  const server = new GoPluginServer({
    cookieKey: PLUGIN_TYPE,
    cookieValue: PLUGIN_TYPE,
    env,
    parentPid,
    log: logFor('goplugin'),
    services: [
      initService({ log: logFor('init'), onDeinit: () => daemon.close() }),
      cfg.configService({
        store,
        log: logFor('config'),
        setLogLevel: level => {
          for (const l of loggers) l.level = level;
        },
      }),
      workloadAttestorService({ store, daemon, log: logFor('attestor'), answers }),
    ],
  });

  serving.server = server;
  const onSigterm = (): void => {
    log.info('SIGTERM: stopping');
    void server.close();
  };
  process.on('SIGTERM', onSigterm);
  let started = true;
  try {
    await server.start();
  } catch (err) {
    // Stopped while starting (SIGTERM, the host gone, a fatal error): the same end as below.
    if (!(err instanceof GoPluginError) || err.code !== 'STOPPED') {
      process.off('SIGTERM', onSigterm);
      if (!(err instanceof GoPluginError)) throw err;
      log.error({ error: err.message, code: err.code }, 'plugin failed to start');
      return 1;
    }
    started = false;
  }

  if (fatal) void server.close();
  if (started) log.info({ socket: server.socketPath, node: process.version }, 'plugin serving');
  await server.done;
  daemon.close();
  process.off('SIGTERM', onSigterm);
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
  const delay = loop.read();
  log.info({ event_loop_delay_p99_ms: delay.p99_ms, ...loopFields(delay), attest_answers: answers }, 'plugin stopped');
  await loop.close();
  return fatal ? EX_SOFTWARE : 0;
}
