// Prometheus metrics of the daemon, on their own registry (served by the
// metrics listener). Names are documented in the README.
//
// Every known label value is set to 0 at creation, so that each series exists
// from the first scrape: rate() and absent()-style alerts work before the
// first event, and a dashboard shows 0 rather than "no data".
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const ATTEST_RESULTS = ['found', 'not_found', 'evicted'] as const;
export const MARKER_STATES = ['mapped', 'pending', 'conflict', 'rejected', 'stale'] as const;
/** The first token (before ':') of every rejection reason of markers and context directories. */
export const REJECTION_REASONS = [
  'symlink',
  'not-regular-file',
  'hard-link',
  'too-large',
  'open-failed',
  'invalid-utf8',
  'invalid-json',
  'invalid-schema',
  'symlink-dir',
  'bad-path',
  'bad-name',
] as const;
export const EVICTION_CAUSES = ['exited', 'start_time_changed', 'marker_removed', 'marker_changed', 'marker_unreadable'] as const;
export const BUDGETS = ['markers', 'event_rate', 'queued_events'] as const;

function zero<T extends string>(c: Counter<T> | Gauge<T>, label: T, values: readonly string[]): void {
  for (const v of values) c.inc({ [label]: v } as Partial<Record<T, string>>, 0);
}

export function createMetrics() {
  const registry = new Registry();
  const m = {
    registry,
    attestCalls: new Counter({ name: 'hexr_attest_calls_total', help: 'Attest calls by result (found, not_found, evicted)', labelNames: ['result'], registers: [registry] }),
    attestWaits: new Counter({ name: 'hexr_attest_waits_total', help: 'Attest calls that waited for a marker possibly in flight (of the PID\'s own pod)', registers: [registry] }),
    attestLatency: new Histogram({
      name: 'hexr_attest_duration_seconds',
      help: 'Attest latency inside the daemon',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    mapSize: new Gauge({ name: 'hexr_pidmap_size', help: 'Mapped host PIDs', registers: [registry] }),
    markers: new Gauge({ name: 'hexr_markers', help: 'Markers by state', labelNames: ['state'], registers: [registry] }),
    rejections: new Counter({ name: 'hexr_marker_rejections_total', help: 'Rejected markers by reason', labelNames: ['reason'], registers: [registry] }),
    evictions: new Counter({ name: 'hexr_evictions_total', help: 'Mappings evicted, by cause (exited, start_time_changed, marker_removed, marker_changed)', labelNames: ['cause'], registers: [registry] }),
    resyncDuration: new Histogram({ name: 'hexr_resync_duration_seconds', help: 'Full resync duration', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] }),
    watcherFloods: new Counter({ name: 'hexr_watcher_floods_total', help: 'Context directories left unwatched for a while because they flooded the daemon with events (rescanned after)', registers: [registry] }),
    watcherErrors: new Counter({ name: 'hexr_watcher_errors_total', help: 'Errors reported by the file watcher', registers: [registry] }),
    stateWriteErrors: new Counter({ name: 'hexr_state_write_errors_total', help: 'Enriched context files or decision journal writes that failed', registers: [registry] }),
    stateCorrupt: new Counter({ name: 'hexr_decision_state_corrupt_total', help: 'Decision journals found corrupt or unreadable at startup (moved aside; the daemon fails safe)', registers: [registry] }),
    podBudget: new Counter({ name: 'hexr_pod_budget_exceeded_total', help: 'Work a pod asked for beyond its budget: markers (files over pod_marker_limit, ignored), event_rate (events delayed past pod_event_rate), queued_events (a queue given up for one rescan)', labelNames: ['budget'], registers: [registry] }),
    reconcileErrors: new Counter({ name: 'hexr_reconcile_errors_total', help: 'Markers whose reconciliation failed unexpectedly (retried; other markers unaffected)', registers: [registry] }),
    historyWriteErrors: new Counter({ name: 'hexr_history_write_errors_total', help: 'Identity history events that could not be appended (disk full, directory not writable, ...)', registers: [registry] }),
  };
  zero(m.attestCalls, 'result', ATTEST_RESULTS);
  zero(m.markers, 'state', MARKER_STATES);
  zero(m.rejections, 'reason', REJECTION_REASONS);
  zero(m.evictions, 'cause', EVICTION_CAUSES);
  zero(m.podBudget, 'budget', BUDGETS);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
