// May a marker for this process still be on its way? The one rule, used by
// the daemon's Attest and by the plugin's copy of the daemon's state alike.
//
// A process can only ever be mapped by a marker in its own scope (its pod in
// the kubelet layout; the one directory in the flat layout) that names its
// container PID. So an empty answer is safe when nothing of that is in
// flight: no marker event of its scope is still unprocessed, and no claim of
// its scope naming its container PID waits for a process. Everything else on
// the node (other pods' floods included) is irrelevant to it.

export interface FlightState {
  /** Scopes with marker events not processed yet; "*" stands for every scope. */
  readonly busy: ReadonlySet<string>;
  /** Per scope, the container PIDs named by claims waiting for a process. */
  readonly pending: ReadonlyMap<string, { has(cpid: number): boolean; readonly size: number }>;
}

export const ALL_SCOPES = '*';

/**
 * `scope`: the process's scope, undefined when it has none (a host process
 * in the kubelet layout: it can never be mapped). `scope` and `cpid` are read
 * only when needed (each costs a /proc read): on a node where nothing is in
 * flight, neither is.
 */
export function mayBeInFlight(s: FlightState, scopeOf: () => string | undefined, cpid: () => number | undefined): boolean {
  if (s.busy.has(ALL_SCOPES)) return true;
  if (s.busy.size === 0 && s.pending.size === 0) return false;
  const scope = scopeOf();
  if (scope === undefined) return false;
  if (s.busy.has(scope)) return true;
  const waiting = s.pending.get(scope);
  if (waiting === undefined || waiting.size === 0) return false;
  const c = cpid();
  return c !== undefined && waiting.has(c);
}

/** The scope of a process: its pod (kubelet layout) or the flat directory. */
export function scopeOfProcess(layout: string, flatScope: string, podUid: () => string | undefined): string | undefined {
  if (layout === 'flat') return flatScope;
  const uid = podUid();
  return uid === undefined ? undefined : `pod:${uid}`;
}
