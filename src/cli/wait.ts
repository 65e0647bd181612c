// `hexr-pid-mapper wait`: blocks until the daemon is ready and enough mapped
// processes match; for scripts and the README's quick start, which starts
// the daemon and role processes in the background and then looks at the map.
import { parseDuration } from '../core/duration.js';
import { escapeText } from '../core/escape.js';
import { parseCommand, usageError } from './args.js';
import type { Env } from './context.js';
import { FILTER_OPTIONS, debugAddr, filterQuery } from './debug-client.js';
import { markersOf, pollDaemon } from './daemon-watch.js';

const USAGE = `usage: hexr-pid-mapper wait [--count N] [--role R] [--agent A] [--tenant T] [--pod UID] [--timeout 60s] [--addr HOST:PORT]

Waits until the daemon answers and is ready (its first full scan is done) and
at least N mapped processes match the filters. Exits 0 then, or 1 after
--timeout, saying what is still missing.

  --count N        mapped processes to wait for (default 1; 0: only the daemon)
  --role, --agent, --tenant, --pod   count only the matching mappings
  --timeout D      how long to wait (default 60s; ms, s, m, h)
  --addr HOST:PORT the daemon's debug_addr (default: HEXR_DEBUG_ADDR, else 127.0.0.1:8787)
`;

export async function waitCommand(args: string[], env: Env): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'wait',
      usage: USAGE,
      options: {
        addr: { type: 'string' },
        count: { type: 'string', default: '1' },
        timeout: { type: 'string', default: '60s' },
        ...FILTER_OPTIONS,
      },
    },
    args,
  );
  if (!parsed.ok) return parsed.exitCode;
  const { values } = parsed;
  if (!/^\d{1,6}$/.test(values.count)) return usageError('wait', USAGE, `--count "${values.count}" is not a number of processes`);
  const count = Number(values.count);
  const timeoutMs = parseDuration(values.timeout);
  if (timeoutMs === undefined) return usageError('wait', USAGE, `--timeout "${values.timeout}" is not a duration (e.g. 30s, 2m)`);
  const addr = debugAddr(values.addr, env);
  const q = filterQuery(values);
  const { view, met } = await pollDaemon(addr, q, v => v.kind === 'ready' && v.entries.length >= count, timeoutMs);
  const what = q === '' ? 'mapped processes' : `mapped processes match ${escapeText(q.slice(1).replace(/&/g, ' '))}`;
  if (met && view.kind === 'ready') {
    process.stderr.write(`hexr-pid-mapper wait: the daemon at ${addr} is ready; ${view.entries.length} ${what}\n`);
    return 0;
  }
  const after = values.timeout;
  if (view.kind === 'unreachable') {
    process.stderr.write(`hexr-pid-mapper wait: no daemon answered at ${addr} within ${after}: is it running (npm start, or the DaemonSet), and is --addr (or HEXR_DEBUG_ADDR) its debug_addr?\n`);
  } else if (view.kind === 'starting') {
    process.stderr.write(`hexr-pid-mapper wait: the daemon at ${addr} is not ready after ${after} (its first full scan is not done)\n`);
  } else {
    const waiting = (await markersOf(addr)).filter(m => m.state !== 'mapped');
    const lines = waiting.slice(0, 20).map(m => `  ${escapeText(m.path)}: ${escapeText(m.state)} (${escapeText(m.reason)})\n`);
    process.stderr.write(
      `hexr-pid-mapper wait: ${view.entries.length} of ${count} ${what} after ${after}` +
        (lines.length > 0 ? `; markers not mapped:\n${lines.join('')}` : '; the daemon sees no other marker\n'),
    );
  }
  return 1;
}
