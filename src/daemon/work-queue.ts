// Marker paths waiting to be reconciled because of watcher events, one queue
// per scope (a pod, or the flat directory), so that no pod can make another
// wait: each batch takes at most `perBatch` paths of every scope in turn, and
// each scope spends from its own token bucket (`rate` paths a second, bursts
// of `burst`). A scope whose bucket is empty keeps its paths queued (it stays
// "busy" for its own unknown PIDs only); a scope whose queue grows past
// `maxQueued` distinct paths gives them up for one rescan of its directories.
// Time is injected.

export interface WorkQueueOptions {
  readonly perBatch: number;
  readonly rate: number;
  readonly burst: number;
  readonly maxQueued: number;
  readonly now: () => number;
}

interface ScopeQueue {
  readonly paths: Set<string>;
  tokens: number;
  at: number;
}

export interface Taken {
  readonly paths: string[];
  /** Scopes some of whose paths were taken. */
  readonly scopes: Set<string>;
}

export class WorkQueue {
  private readonly scopes = new Map<string, ScopeQueue>();
  /** Paths given up because a queue overflowed, counted per scope (for metrics). */
  overflowed = 0;

  constructor(private readonly o: WorkQueueOptions) {}

  /** Queues a path; false when the scope's queue is full (the caller rescans instead). */
  add(scope: string, path: string): boolean {
    let q = this.scopes.get(scope);
    if (!q) this.scopes.set(scope, (q = { paths: new Set(), tokens: this.o.burst, at: this.o.now() }));
    if (q.paths.has(path)) return true;
    if (q.paths.size >= this.o.maxQueued) {
      this.overflowed += q.paths.size;
      q.paths.clear();
      return false;
    }
    q.paths.add(path);
    return true;
  }

  get size(): number {
    let n = 0;
    for (const q of this.scopes.values()) n += q.paths.size;
    return n;
  }

  /** Scopes with queued paths (ready or throttled). */
  queuedScopes(): string[] {
    const out: string[] = [];
    for (const [s, q] of this.scopes) if (q.paths.size > 0) out.push(s);
    return out;
  }

  /** Takes up to `perBatch` paths of every scope that has tokens. */
  take(): Taken {
    const paths: string[] = [];
    const scopes = new Set<string>();
    const now = this.o.now();
    for (const [s, q] of this.scopes) {
      this.refill(q, now);
      if (q.paths.size === 0) {
        if (q.tokens >= this.o.burst) this.scopes.delete(s); // idle and full: forget it
        continue;
      }
      const n = Math.min(q.paths.size, this.o.perBatch, Math.floor(q.tokens));
      if (n <= 0) continue;
      let i = 0;
      for (const p of q.paths) {
        if (i++ >= n) break;
        q.paths.delete(p);
        paths.push(p);
      }
      q.tokens -= n;
      scopes.add(s);
    }
    return { paths, scopes };
  }

  /** Is there a path a batch could take now? */
  hasReady(): boolean {
    const now = this.o.now();
    for (const q of this.scopes.values()) {
      if (q.paths.size === 0) continue;
      this.refill(q, now);
      if (q.tokens >= 1) return true;
    }
    return false;
  }

  /** Milliseconds until a throttled scope may go on, or undefined when none waits. */
  nextReadyInMs(): number | undefined {
    let best: number | undefined;
    for (const q of this.scopes.values()) {
      if (q.paths.size === 0) continue;
      const ms = q.tokens >= 1 ? 0 : Math.ceil(((1 - q.tokens) / this.o.rate) * 1000);
      best = best === undefined ? ms : Math.min(best, ms);
    }
    return best;
  }

  /** Scopes that have paths queued but no tokens. */
  throttledScopes(): string[] {
    const now = this.o.now();
    const out: string[] = [];
    for (const [s, q] of this.scopes) {
      this.refill(q, now);
      if (q.paths.size > 0 && q.tokens < 1) out.push(s);
    }
    return out;
  }

  private refill(q: ScopeQueue, now: number): void {
    if (now > q.at) {
      q.tokens = Math.min(this.o.burst, q.tokens + ((now - q.at) / 1000) * this.o.rate);
      q.at = now;
    }
  }
}
