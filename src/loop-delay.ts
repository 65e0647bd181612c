// Event-loop delay of this process (perf_hooks.monitorEventLoopDelay): how
// long anything ready to run had to wait. Reported by the daemon in
// /debug/status and by the plugin when it stops; the benchmarks read both.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopDelay {
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

export class LoopDelayMonitor {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  start(): void {
    this.h.enable();
  }

  /** Delays since the start (or the last reset). */
  read(reset = false): LoopDelay {
    const ms = (ns: number): number => Math.round((ns / 1e6) * 100) / 100;
    const out = { p50_ms: ms(this.h.percentile(50)), p99_ms: ms(this.h.percentile(99)), max_ms: ms(this.h.max) };
    if (reset) this.h.reset();
    return out;
  }

  close(): Promise<void> {
    this.h.disable();
    return Promise.resolve();
  }
}
