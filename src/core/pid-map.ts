// Immutable, versioned snapshot of the PID map. The reconciler is its only
// writer: it publishes a new PidMap after every batch that changed anything;
// readers (Attest, debug endpoint) hold whichever snapshot they got.
import type { Marker } from './marker.js';

export interface Mapping {
  readonly hostPid: number;
  /** Field 22 of /proc/H/stat when mapped; Attest re-checks it. */
  readonly startTime: number;
  readonly pidNs: number | undefined;
  readonly containerPid: number;
  readonly podUid: string | undefined;
  readonly containerId: string | undefined;
  readonly marker: Marker;
  readonly markerPath: string;
  readonly scope: string;
  readonly mappedAt: number;
  readonly selectors: readonly string[];
}

export class PidMap {
  static readonly EMPTY = new PidMap(0, new Map());

  constructor(
    readonly version: number,
    private readonly byPid: ReadonlyMap<number, Mapping>,
  ) {}

  get(hostPid: number): Mapping | undefined {
    return this.byPid.get(hostPid);
  }

  get size(): number {
    return this.byPid.size;
  }

  values(): IterableIterator<Mapping> {
    return this.byPid.values();
  }
}
