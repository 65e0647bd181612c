// The messages of hexr.pidmapper.v1.PidMapper (proto/hexr/pidmapper/v1/
// pidmapper.proto) as grpc-js hands them over with our loader options
// (keepCase, 64-bit integers as decimal strings): declared once, for the
// daemon that serves them and the plugin that consumes them.

export interface MapEntryMsg {
  host_pid: number;
  start_time: string;
  selector_values: readonly string[];
  scope: string;
}

export interface SlotSeqMsg {
  slot: number;
  seq: string;
}

export interface PendingClaimsMsg {
  scope: string;
  container_pids: number[];
}

export interface MapUpdateMsg {
  map_version: string;
  full: boolean;
  upserts: MapEntryMsg[];
  removed: number[];
  pid_namespace: string;
  instance: string;
  seq: string;
  pending: PendingClaimsMsg[];
  busy_scopes: string[];
  layout: string;
  flat_scope: string;
  slots: SlotSeqMsg[];
  more: boolean;
}

export interface AttestRequestMsg {
  pid: number;
  max_wait_ms: number;
}

export interface AttestResponseMsg {
  selector_values: readonly string[];
  found: boolean;
  map_version: string;
  waited_ms: number;
}
