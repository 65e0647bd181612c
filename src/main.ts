#!/usr/bin/env node
// Process entry. The only module that reads process.env, sets the exit code
// or calls process.exit; each subcommand lives in src/cli/.
import { argv, env, exitCode } from './cli/context.js';

const USAGE = `usage: hexr-pid-mapper <command> [options]

commands:
  daemon     run the per-node PID mapper (watch markers, map PIDs, serve the local API)
  plugin     run as a SPIRE external WorkloadAttestor (started by the SPIRE agent)
  pidmap     print the daemon's current PID map (table, or --json)
  explain    explain why a host PID gets the selectors it gets, or none
  doctor     check this node's prerequisites (PASS / WARN / FAIL lines)
  run-as     start a command and write its marker the way the SDK does
  registrations  SPIRE entries or ClusterSPIFFEIDs for the roles in hexr build's process contexts
  help       show this text
`;

async function main(): Promise<number> {
  const [cmd, ...rest] = argv();
  switch (cmd) {
    case 'daemon':
      return (await import('./cli/daemon.js')).daemonCommand(rest, env());
    case 'plugin':
      return (await import('./cli/plugin.js')).pluginCommand(rest, env());
    case 'pidmap':
      return (await import('./cli/pidmap.js')).pidmapCommand(rest, env());
    case 'explain':
      return (await import('./cli/explain.js')).explainCommand(rest, env());
    case 'doctor':
      return (await import('./cli/doctor.js')).doctorCommand(rest, env());
    case 'run-as':
      return (await import('./cli/run-as.js')).runAsCommand(rest, env());
    case 'registrations':
      return (await import('./cli/registrations.js')).registrationsCommand(rest, env());
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stderr.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`hexr-pid-mapper: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

main().then(
  code => {
    exitCode(code);
    // After a fatal error, whatever still holds the event loop must not keep a broken process alive.
    if (code !== 0) setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`hexr-pid-mapper: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    exitCode(1);
  },
);
