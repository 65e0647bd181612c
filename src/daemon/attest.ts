// The Attest hot path (design.md "Attest(pid)"). Never scans /proc: one read
// of /proc/PID/stat for a mapped PID, at most one of /proc/PID/status to see
// whether a pending marker may be this process's.
import type { PidMap } from '../core/pid-map.js';
import type { Metrics } from './metrics.js';
import type { Procfs } from './procfs.js';

export interface AttestSource {
  snapshot(): PidMap;
  inFlight(pid: number): boolean;
  nextBatch(ms: number): Promise<void>;
  evict(pid: number, cause: 'exited' | 'start_time_changed'): void;
}

export interface AttestResult {
  selector_values: readonly string[];
  found: boolean;
  map_version: number;
  /** Time spent waiting for an in-flight marker, ms (0: answered at once). */
  waited_ms: number;
}

export function createAttester(o: { source: AttestSource; procfs: Procfs; defaultWaitMs: number; metrics: Metrics }) {
  return async function attest(pid: number, maxWaitMs = 0): Promise<AttestResult> {
    const t0 = performance.now();
    const wait = maxWaitMs > 0 ? Math.min(maxWaitMs, 30_000) : o.defaultWaitMs;
    const deadline = t0 + wait;
    let result: AttestResult | undefined;
    let label = 'not_found';
    let waitedSince: number | undefined;
    if (Number.isInteger(pid) && pid > 0) {
      for (;;) {
        const snap = o.source.snapshot();
        const m = snap.get(pid);
        if (m) {
          const st = o.procfs.readStartTime(pid);
          if (st === m.startTime) {
            result = { selector_values: m.selectors, found: true, map_version: snap.version, waited_ms: waitedMs(waitedSince) };
            label = 'found';
          } else {
            o.source.evict(pid, st === undefined ? 'exited' : 'start_time_changed');
            label = 'evicted';
          }
          break;
        }
        const left = deadline - performance.now();
        if (left <= 0 || !o.source.inFlight(pid)) break;
        waitedSince ??= performance.now();
        await o.source.nextBatch(left);
      }
    }
    result ??= { selector_values: [], found: false, map_version: o.source.snapshot().version, waited_ms: waitedMs(waitedSince) };
    o.metrics.attestCalls.inc({ result: label });
    if (waitedSince !== undefined) o.metrics.attestWaits.inc();
    o.metrics.attestLatency.observe((performance.now() - t0) / 1000);
    return result;
  };
}

function waitedMs(since: number | undefined): number {
  return since === undefined ? 0 : Math.max(1, Math.round(performance.now() - since));
}

export type Attester = ReturnType<typeof createAttester>;
