// `hexr-pid-mapper history`: who held which role when, from the identity
// history the daemon appends to state_dir (src/daemon/history.ts). It reads
// the files directly, so it answers while the daemon is down.
import { safeJson } from '../core/escape.js';
import { daemonDownAt, heldAt, holdings, isRoleEvent, matches, type HistoryEvent, type HistoryFilter, type Holding } from '../core/history.js';
import { KEYS } from '../daemon/config.js';
import { readHistory, type HistoryRead } from '../daemon/history-files.js';
import { parseCommand, usageError } from './args.js';
import type { Env } from './context.js';
import { daemonStatus, debugAddr, placesOf } from './debug-client.js';
import { renderTable, type Cell } from './table.js';
import { localTime, parseTimeArg } from './time-arg.js';

const USAGE = `usage: hexr-pid-mapper history [--role R] [--pod UID] [--pid P] [--agent A] [--tenant T]
                               [--at TIME | --since TIME] [--json] [--state-dir DIR] [--addr HOST:PORT]

Every grant and removal of a role, from the identity history in state_dir
(history.jsonl and its rotated files), oldest first. Reads the files
directly: works while the daemon is down.

  --at TIME          the processes that held a matching role at TIME
  --since TIME       only what happened from TIME on
  --role, --pod, --pid (host PID), --agent, --tenant   only matching events
  --json             JSON lines: one event (with --at: one holding) per line
  --state-dir DIR    the daemon's state_dir (default: HEXR_STATE_DIR, else what the
                     daemon at --addr reports, else ${KEYS['state_dir']?.def})
  --addr HOST:PORT   the daemon's debug_addr (default: HEXR_DEBUG_ADDR, else 127.0.0.1:8787)

TIME is local time unless it says otherwise: 14:03 (the latest 14:03), 2026-11-23 14:03:20,
2026-11-23T14:03:20Z, or 30m, 1h, 2d (that long ago). Tables show local time.
`;

export async function historyCommand(args: string[], env: Env, now = Date.now()): Promise<number> {
  const parsed = parseCommand(
    {
      name: 'history',
      usage: USAGE,
      options: {
        role: { type: 'string' },
        pod: { type: 'string' },
        pid: { type: 'string' },
        agent: { type: 'string' },
        tenant: { type: 'string' },
        at: { type: 'string' },
        since: { type: 'string' },
        json: { type: 'boolean', default: false },
        'state-dir': { type: 'string' },
        addr: { type: 'string' },
      },
    },
    args,
  );
  if (!parsed.ok) return parsed.exitCode;
  const v = parsed.values;
  if (v.pid !== undefined && !/^\d{1,10}$/.test(v.pid)) return usageError('history', USAGE, `--pid "${v.pid}" is not a PID`);
  if (v.at !== undefined && v.since !== undefined) return usageError('history', USAGE, '--at and --since do not go together');
  const at = v.at === undefined ? undefined : parseTimeArg(v.at, now);
  if (v.at !== undefined && at === undefined) return usageError('history', USAGE, `--at "${v.at}" is not a time (e.g. 14:03, 2026-11-23 14:03, 1h)`);
  const since = v.since === undefined ? undefined : parseTimeArg(v.since, now);
  if (v.since !== undefined && since === undefined) return usageError('history', USAGE, `--since "${v.since}" is not a time (e.g. 1h, 14:03, 2026-11-23)`);
  const filter: HistoryFilter = { role: v.role, pod: v.pod, pid: v.pid === undefined ? undefined : Number(v.pid), agent: v.agent, tenant: v.tenant };

  const dir = v['state-dir'] ?? env['HEXR_STATE_DIR'] ?? placesOf(await daemonStatus(debugAddr(v.addr, env), 500))?.['state_dir'] ?? KEYS['state_dir']?.def ?? '/run/hexr/pid-map';
  let read: HistoryRead;
  try {
    read = readHistory(dir);
  } catch (err) {
    process.stderr.write(`hexr-pid-mapper history: cannot read the history in ${dir}: ${(err as Error).message}\n`);
    return 1;
  }
  if (read.files.length === 0) {
    process.stderr.write(
      `hexr-pid-mapper history: no identity history in ${dir}: pass the daemon's state_dir with --state-dir DIR ` +
        '(or start the daemon, which reports it); history_max_bytes=0 turns the history off\n',
    );
    return 1;
  }
  const note = read.skipped > 0 ? `; ${read.skipped} unreadable line(s) skipped (cut short by a full disk or a crash)` : '';
  const from = `${read.files.length} file(s) in ${dir}${note}`;

  if (at !== undefined) {
    const held = heldAt(holdings(read.events), at, filter);
    if (v.json) process.stdout.write(held.map(h => `${safeJson(holdingJson(h))}\n`).join(''));
    else {
      if (held.length > 0) process.stdout.write(renderTable(HOLDING_COLS, held.map(holdingRow)));
      const down = daemonDownAt(read.events, at);
      const downNote = down ? `; the daemon was stopped at ${localTime(down.stopped)}${down.started ? ` until ${localTime(down.started)}` : ''}` : '';
      process.stdout.write(`${held.length === 0 ? 'no process' : held.length === 1 ? '1 process' : `${held.length} processes`} held a matching role at ${localTime(at)}${downNote} (${from})\n`);
    }
    return 0;
  }

  const events = read.events.filter(e => (since === undefined || Date.parse(e.time) >= since) && (!isRoleEvent(e) || matches(e, filter)));
  if (v.json) process.stdout.write(events.map(e => `${safeJson(e)}\n`).join(''));
  else {
    const roleEvents = events.filter(isRoleEvent).length;
    if (events.length > 0) process.stdout.write(renderTable(EVENT_COLS, events.map(eventRow)));
    process.stdout.write(`${roleEvents} grant(s) and removal(s) (${from})\n`);
  }
  return 0;
}

const EVENT_COLS = ['TIME', 'EVENT', 'CAUSE', 'TENANT', 'AGENT', 'ROLE', 'HOST PID', 'START', 'CPID', 'POD', 'MARKER'];

function eventRow(e: HistoryEvent): Cell[] {
  const t = localTime(Date.parse(e.time));
  if (!isRoleEvent(e)) return [t, e.event, `daemon PID ${e.daemon_pid}`];
  return [t, e.event, e.cause, e.tenant, e.agent_name, e.process_role, e.host_pid, e.start_time, e.container_pid, e.pod_uid, e.marker_path];
}

const HOLDING_COLS = ['TENANT', 'AGENT', 'ROLE', 'HOST PID', 'START', 'CPID', 'POD', 'FROM', 'UNTIL', 'ENDED BY', 'MARKER'];

function holdingRow(h: Holding): Cell[] {
  const g = h.grant;
  return [g.tenant, g.agent_name, g.process_role, g.host_pid, g.start_time, g.container_pid, g.pod_uid, localTime(h.from), h.until === undefined ? 'still held' : localTime(h.until), h.endCause, g.marker_path];
}

function holdingJson(h: Holding): Record<string, unknown> {
  const g = h.grant;
  return {
    tenant: g.tenant,
    agent_name: g.agent_name,
    process_role: g.process_role,
    host_pid: g.host_pid,
    start_time: g.start_time,
    container_pid: g.container_pid,
    pod_uid: g.pod_uid,
    container_id: g.container_id,
    marker_path: g.marker_path,
    marker_inode: g.marker_inode,
    from: new Date(h.from).toISOString(),
    until: h.until === undefined ? null : new Date(h.until).toISOString(),
    ended_by: h.endCause,
  };
}
