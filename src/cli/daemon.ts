import { ConfigError, KEYS, loadDaemonConfig } from '../daemon/config.js';
import { runDaemon } from '../daemon/daemon.js';
import { createLogger } from '../log.js';
import { parseCommand } from './args.js';
import type { Env } from './context.js';

const SYNOPSIS = 'usage: hexr-pid-mapper daemon [--config FILE.json] [options]   (hexr-pid-mapper daemon --help lists every option)\n';

function help(): string {
  const lines = Object.entries(KEYS).map(([k, s]) => `  --${s.flag.padEnd(22)} ${s.env.padEnd(27)} default ${JSON.stringify(s.def)}\n      (${k}) ${s.help}`);
  return `usage: hexr-pid-mapper daemon [--config FILE.json] [options]\n\noptions (flag, environment variable, default):\n${lines.join('\n')}\n`;
}

export async function daemonCommand(args: string[], env: Env): Promise<number> {
  // Syntax first (unknown options, missing values: one line), then the values (every problem at once).
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } };
  for (const spec of Object.values(KEYS)) options[spec.flag] = { type: 'string' };
  const parsed = parseCommand({ name: 'daemon', usage: SYNOPSIS, help: help(), options }, args);
  if (!parsed.ok) return parsed.exitCode;
  let config;
  try {
    config = loadDaemonConfig(args, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hexr-pid-mapper daemon: ${err.message}\n${SYNOPSIS}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  const ac = new AbortController();
  const stop = (sig: string) => () => {
    log.info({ signal: sig }, 'signal received');
    ac.abort();
  };
  process.once('SIGTERM', stop('SIGTERM'));
  process.once('SIGINT', stop('SIGINT'));
  try {
    await runDaemon(config, log, ac.signal);
    return 0;
  } catch (err) {
    log.error({ error: err instanceof Error ? err.message : String(err) }, 'daemon failed');
    return 1;
  }
}
