#!/usr/bin/env node
// Process entry. The only module that reads process.env, sets the exit code
// or calls process.exit; each subcommand lives in src/cli/.
import { argv, env, exitCode } from './cli/context.js';
import { escapeText } from './core/escape.js';

const USAGE = `usage: hexr-pid-mapper <command> [options]      (hexr-pid-mapper <command> --help for its options)

commands:
  daemon         run the per-node PID mapper (watch markers, map PIDs, serve the local API)
  plugin         run as a SPIRE external WorkloadAttestor (started by the SPIRE agent)
  pidmap         print the daemon's current PID map (table, --json, or -q for host PIDs)
  explain        explain why a host PID gets the selectors it gets, or none
  wait           wait until the daemon is ready and enough processes are mapped
  history        which process held which role when (reads state_dir; works while the daemon is down)
  doctor         check this node's prerequisites and the running daemon's configuration
  run-as         start a command and write its marker the way the SDK does
  registrations  SPIRE entries or ClusterSPIFFEIDs for the roles in hexr build's process contexts
  help [command] show this text, or a command's help
`;

type Command = (args: string[], env: Readonly<Record<string, string | undefined>>) => Promise<number>;

const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  daemon: async () => (await import('./cli/daemon.js')).daemonCommand,
  plugin: async () => (await import('./cli/plugin.js')).pluginCommand,
  pidmap: async () => (await import('./cli/pidmap.js')).pidmapCommand,
  explain: async () => (await import('./cli/explain.js')).explainCommand,
  wait: async () => (await import('./cli/wait.js')).waitCommand,
  history: async () => (await import('./cli/history.js')).historyCommand,
  doctor: async () => (await import('./cli/doctor.js')).doctorCommand,
  'run-as': async () => (await import('./cli/run-as.js')).runAsCommand,
  registrations: async () => (await import('./cli/registrations.js')).registrationsCommand,
};

async function main(): Promise<number> {
  const [cmd, ...rest] = argv();
  if (cmd === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const topic = rest[0];
    if (topic !== undefined && Object.hasOwn(COMMANDS, topic)) return (await (COMMANDS[topic] as () => Promise<Command>)())(['--help'], env());
    if (topic !== undefined) {
      process.stderr.write(`hexr-pid-mapper help: unknown command "${escapeText(topic)}"\n${USAGE}`);
      return 2;
    }
    process.stdout.write(USAGE);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (load === undefined) {
    process.stderr.write(`hexr-pid-mapper: unknown command "${escapeText(cmd)}"\n${USAGE}`);
    return 2;
  }
  return (await load())(rest, env());
}

/** After a failure, whatever still holds the event loop must not keep a broken process alive. */
function exitWithin2s(code: number): void {
  exitCode(code);
  if (code !== 0) setTimeout(() => process.exit(code), 2000).unref();
}

main().then(
  exitWithin2s,
  (err: unknown) => {
    // One line, never a stack trace: an operator reads this, not a debugger.
    const cmd = argv()[0] ?? '';
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`hexr-pid-mapper ${escapeText(cmd)}: ${escapeText(msg.split('\n')[0] ?? '')}\n`);
    exitWithin2s(1);
  },
);
