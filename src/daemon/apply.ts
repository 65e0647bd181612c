// Carries out what the decision core settled (core/decision.ts Settlement):
// mappings published or withdrawn (map-publisher.ts), enriched context
// files, metrics, logs and identity-history events. Called only after the
// settlement was persisted.
import type { Candidate, ClaimView, Settlement } from '../core/decision.js';
import { escapeText } from '../core/escape.js';
import type { Marker } from '../core/marker.js';
import type { Mapping } from '../core/pid-map.js';
import { selectorValuesFor } from '../core/selectors.js';
import type { Logger } from '../log.js';
import { F } from '../log.js';
import type { ContextDir } from './layout.js';
import type { MapPublisher } from './map-publisher.js';
import type { Metrics } from './metrics.js';
import type { Procfs } from './procfs.js';
import { fileId, type FileIdentity } from './secure-fs.js';
import type { StateWriter } from './state-writer.js';

/** What the applier needs to know of a marker path. */
export interface AppliedRecord {
  readonly path: string;
  readonly dir: ContextDir;
  readonly marker: Marker | undefined;
  readonly identity: FileIdentity | undefined;
}

/** A role granted to or taken from a process, for the identity history. */
export interface IdentityChange {
  readonly kind: 'grant' | 'revoke';
  readonly mapping: Mapping;
  readonly inode: string;
  readonly cause: string;
}

export interface ApplyContext {
  readonly procfs: Procfs;
  readonly map: MapPublisher;
  readonly state: StateWriter;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly nodeName: string | undefined;
  readonly now: () => number;
  record(path: string): AppliedRecord | undefined;
  /** A claim's state changed (after the mappings were updated). */
  onState(path: string, v: ClaimView): void;
  onIdentityChange(c: IdentityChange): void;
}

export function applySettlement(ctx: ApplyContext, s: Settlement): void {
  for (const u of s.unbound) withdraw(ctx, u.path, u.cand, u.cause, 'mapping removed');
  for (const u of s.suspended) withdraw(ctx, u.path, u.cand, 'marker_unreadable', 'mapping suspended: the marker cannot be read cleanly; the role stays reserved for this process');
  for (const b of s.bound) publish(ctx, b.path, b.cand, b.restored ? 'restored' : 'mapped');
  for (const b of s.resumed) publish(ctx, b.path, b.cand, 'resumed');
  for (const [p, v] of s.states) ctx.onState(p, v);
}

function withdraw(ctx: ApplyContext, path: string, cand: Candidate, cause: string, message: string): void {
  const m = ctx.map.remove(cand.pid, path);
  if (!m) return; // never published (restored and not yet confirmed, or already suspended)
  ctx.state.remove(m.hostPid);
  ctx.metrics.evictions.inc({ cause });
  ctx.log.info({ [F.markerPath]: escapeText(path), [F.hostPid]: cand.pid, [F.reason]: cause }, message);
  emit(ctx, 'revoke', m, cause);
}

function publish(ctx: ApplyContext, path: string, cand: Candidate, cause: string): void {
  const r = ctx.record(path);
  if (!r?.marker || !r.identity) return;
  const m = r.marker;
  const cg = ctx.procfs.readCgroup(cand.pid);
  const podUid = r.dir.podUid ?? cg?.podUid;
  const containerId = cg?.containerId;
  const mapping: Mapping = Object.freeze({
    hostPid: cand.pid,
    startTime: cand.startTime,
    pidNs: ctx.procfs.readPidNs(cand.pid),
    containerPid: m.container_pid,
    podUid,
    containerId,
    marker: m,
    markerPath: r.path,
    scope: r.dir.scope,
    mappedAt: ctx.now(),
    selectors: Object.freeze(selectorValuesFor({ ...m, podUid, containerId })),
  });
  ctx.map.set(mapping);
  ctx.state.write(mapping, fileId(r.identity), ctx.nodeName);
  ctx.log.info(
    { [F.markerPath]: escapeText(r.path), [F.hostPid]: cand.pid, [F.containerPid]: m.container_pid, [F.role]: m.process_role, [F.podUid]: podUid, [F.reason]: cause },
    'marker mapped',
  );
  emit(ctx, 'grant', mapping, cause);
}

function emit(ctx: ApplyContext, kind: IdentityChange['kind'], mapping: Mapping, cause: string): void {
  const r = ctx.record(mapping.markerPath);
  try {
    ctx.onIdentityChange({ kind, mapping, inode: r?.identity ? String(r.identity.ino) : '', cause });
  } catch (err) {
    ctx.log.error({ [F.err]: String(err) }, 'identity change listener failed');
  }
}
