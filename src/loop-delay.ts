// Event-loop delay of this process (perf_hooks.monitorEventLoopDelay): how
// long anything ready to run had to wait. Reported by the daemon in
// /debug/status and by the plugin; the benchmarks read both.
//
// A delay has three kinds of cause: this thread running (our own code, its
// GC); this thread waiting for a CPU (the machine's load: on two cores, the
// benchmark's own callers); and neither: on a virtual machine the hypervisor
// can leave the whole vCPU unscheduled for 100 ms and more ("steal"). Only
// the first is up to the code. The kernel's per-thread scheduler figures
// (/proc/thread-self/schedstat: ns on a CPU, ns waiting for one) tell them
// apart, so next to the plain maximum comes `max_on_cpu_ms`: the longest
// delay counting only the time the thread was running. It is an upper bound
// of what our code cost (a sample's whole interval counts, not just its late
// part).
import * as fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopDelay {
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** The longest delay counting only time this thread ran; absent where the kernel does not say. */
  readonly max_on_cpu_ms?: number;
}

/** How often the on-CPU share of a delay is sampled (the histogram's resolution too). */
const RESOLUTION_MS = 10;

/** "run_ns wait_ns timeslices" of a schedstat file: the ns on a CPU. */
export function parseSchedstat(text: string): number | undefined {
  const m = /^(\d+) \d+ \d+/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Of a timer `lateMs` late, the part that can be due to this thread running:
 * at most its time on a CPU over the same interval.
 */
export function onCpuDelayMs(lateMs: number, onCpuNs: number): number {
  return Math.max(0, Math.min(lateMs, onCpuNs / 1e6));
}

export class LoopDelayMonitor {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private fd: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly buf = Buffer.alloc(128);
  private maxOnCpu = 0;

  start(): void {
    this.h.enable();
    try {
      this.fd = fs.openSync('/proc/thread-self/schedstat', 'r'); // the main thread: the event loop's
    } catch {
      return; // no schedstat (not Linux, or no CONFIG_SCHED_INFO): the plain figures only
    }
    let at = performance.now();
    let before = this.onCpuNs();
    this.timer = setInterval(() => {
      const now = performance.now();
      const ns = this.onCpuNs();
      if (ns !== undefined && before !== undefined) {
        const d = onCpuDelayMs(now - at - RESOLUTION_MS, ns - before);
        if (d > this.maxOnCpu) this.maxOnCpu = d;
      }
      at = now;
      before = ns;
    }, RESOLUTION_MS);
    this.timer.unref();
  }

  /** Delays since the start (or the last reset). */
  read(reset = false): LoopDelay {
    const ms = (ns: number): number => Math.round((ns / 1e6) * 100) / 100;
    const out: LoopDelay = {
      p50_ms: ms(this.h.percentile(50)),
      p99_ms: ms(this.h.percentile(99)),
      max_ms: ms(this.h.max),
      ...(this.timer ? { max_on_cpu_ms: ms(this.maxOnCpu * 1e6) } : {}),
    };
    if (reset) {
      this.h.reset();
      this.maxOnCpu = 0;
    }
    return out;
  }

  close(): Promise<void> {
    this.h.disable();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    return Promise.resolve();
  }

  private onCpuNs(): number | undefined {
    if (this.fd === undefined) return undefined;
    try {
      const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
      return parseSchedstat(this.buf.toString('latin1', 0, n));
    } catch {
      return undefined;
    }
  }
}
