// Event-loop delay of this process (perf_hooks.monitorEventLoopDelay): how
// long anything ready to run had to wait. Reported by the daemon in
// /debug/status and by the plugin; the benchmarks read both. Node's figures
// are the times between its 10 ms ticks: 10 ms means no delay at all.
//
// A delay has three kinds of cause: this thread running (our own code, its
// GC); this thread waiting for a CPU (the machine's load: on two cores, the
// benchmark's own callers); and neither: on a virtual machine the hypervisor
// can leave the whole vCPU unscheduled for 100 ms and more ("steal"). Only
// the first is up to the code. The kernel's per-thread scheduler figures
// (/proc/thread-self/schedstat: ns on a CPU, ns waiting for one) tell them
// apart, so next to the plain maximum comes `max_on_cpu_ms`: the longest
// delay past a tick, counting only the CPU time the thread used meanwhile (a
// sample's whole interval counts, not just its late part). What it does not
// count is time the thread slept inside a synchronous call; the daemon's
// synchronous calls read /proc and append to files, which do not wait on a
// device unless the kernel throttles writes.
import * as fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopDelay {
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** The longest delay past a tick counting only CPU time this thread used; absent where the kernel does not say. */
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
  /** The last sample: when, and the thread's CPU time then. */
  private at = 0;
  private before: number | undefined;

  start(): void {
    if (this.timer || this.fd !== undefined) return;
    this.h.enable();
    try {
      this.fd = fs.openSync('/proc/thread-self/schedstat', 'r'); // the main thread: the event loop's
    } catch {
      return; // no schedstat (not Linux, or no CONFIG_SCHED_INFO): the plain figures only
    }
    this.at = performance.now();
    this.before = this.onCpuNs();
    this.timer = setInterval(() => this.sample(), RESOLUTION_MS);
    this.timer.unref();
  }

  /** Records the on-CPU share of the delay since the last sample. */
  private sample(): void {
    const now = performance.now();
    const ns = this.onCpuNs();
    if (ns !== undefined && this.before !== undefined) {
      const d = onCpuDelayMs(now - this.at - RESOLUTION_MS, ns - this.before);
      if (d > this.maxOnCpu) this.maxOnCpu = d;
    }
    this.at = now;
    this.before = ns;
  }

  /**
   * Delays since the start (or the last reset). A reset first counts the
   * turn it is called from, so that a delay ending there stays in the window
   * it belongs to.
   */
  read(reset = false): LoopDelay {
    if (reset && this.timer) this.sample();
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
