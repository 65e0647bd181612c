// Long loops on the daemon's event loop (batches, liveness, /proc listings)
// give way to it every few milliseconds of work, measured in time rather than
// items: on a loaded node one /proc read can take 20 µs or 2 ms.

/** Longest stretch of work without yielding to the event loop. */
export const SLICE_MS = 4;

/** Lets timers and I/O callbacks run, then resumes. */
export const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

export class TimeSlice {
  private start = performance.now();
  private n = 0;

  /** True when this slice has run for `ms` (the clock is read every `every` calls). */
  due(every = 8, ms = SLICE_MS): boolean {
    return ++this.n % every === 0 && performance.now() - this.start > ms;
  }

  /** Starts a new slice (after the caller has yielded by other means). */
  restart(): void {
    this.start = performance.now();
  }

  /** Yields to the event loop and starts a new slice. */
  async yield(): Promise<void> {
    await tick();
    this.restart();
  }
}
