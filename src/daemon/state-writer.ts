// Enriched context files: {state_dir}/{host_pid}.json, written by temp file +
// rename (readers never see half a file), removed when the mapping goes. The
// file also records which marker version and process start time the mapping
// was made from, so a restarted daemon can tell a live binding from a stale one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spiffePath } from '../core/selectors.js';
import type { Mapping } from '../core/pid-map.js';
import type { FileIdentity } from './secure-fs.js';

export interface RestoredBinding {
  readonly markerPath: string;
  readonly identity: FileIdentity;
  readonly hostPid: number;
  readonly startTime: number;
}

/** A FileIdentity read back from one of our JSON files, or undefined if it is not one. */
function identityFrom(v: unknown): FileIdentity | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const { dev, ino, size, mtimeMs, ctimeMs } = o;
  if (typeof dev !== 'number' || typeof ino !== 'number' || typeof size !== 'number' || typeof mtimeMs !== 'number' || typeof ctimeMs !== 'number') return undefined;
  return { dev, ino, size, mtimeMs, ctimeMs };
}

export class StateWriter {
  constructor(
    private readonly dir: string,
    private readonly onError: (err: Error, op: string) => void,
  ) {}

  prepare(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }

  write(m: Mapping, identity: FileIdentity, nodeName: string | undefined): void {
    const doc = {
      agent_name: m.marker.agent_name,
      tenant: m.marker.tenant,
      process_role: m.marker.process_role,
      framework: m.marker.framework ?? null,
      resources: m.marker.resources ?? [],
      container_pid: m.containerPid,
      host_pid: m.hostPid,
      host_start_time: m.startTime,
      pid_namespace: m.pidNs ?? null,
      pod_uid: m.podUid ?? null,
      container_id: m.containerId ?? null,
      node_name: nodeName ?? null,
      spiffe_path: spiffePath(m.marker),
      selectors: m.selectors,
      marker_path: m.markerPath,
      marker_identity: identity,
      mapped_at: new Date(m.mappedAt).toISOString(),
    };
    const file = path.join(this.dir, `${m.hostPid}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o644 });
      fs.renameSync(tmp, file);
    } catch (err) {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        /* best effort */
      }
      this.onError(err as Error, `write ${file}`);
    }
  }

  remove(hostPid: number): void {
    const file = path.join(this.dir, `${hostPid}.json`);
    try {
      fs.rmSync(file, { force: true });
    } catch (err) {
      this.onError(err as Error, `remove ${file}`);
    }
  }

  private get staleFile(): string {
    return path.join(this.dir, '.stale-markers.json');
  }

  /**
   * Marker versions whose process is gone: kept across restarts so that a
   * process that later reuses the container PID never inherits the role.
   */
  writeStale(entries: ReadonlyMap<string, FileIdentity>): void {
    const file = this.staleFile;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify([...entries].map(([markerPath, identity]) => ({ markerPath, identity }))), { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch (err) {
      this.onError(err as Error, `write ${file}`);
    }
  }

  restoreStale(): Map<string, FileIdentity> {
    const out = new Map<string, FileIdentity>();
    try {
      const list = JSON.parse(fs.readFileSync(this.staleFile, 'utf8')) as unknown;
      if (!Array.isArray(list)) return out;
      for (const e of list as { markerPath?: unknown; identity?: unknown }[]) {
        const identity = identityFrom(e?.identity);
        if (typeof e?.markerPath === 'string' && identity) out.set(e.markerPath, identity);
      }
    } catch {
      /* none yet, or unreadable: start empty */
    }
    return out;
  }

  /** Bindings recorded by a previous run (our own files, still parsed defensively). */
  restore(): RestoredBinding[] {
    const out: RestoredBinding[] = [];
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names) {
      if (!/^\d+\.json$/.test(name)) continue;
      try {
        const d = JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as Record<string, unknown>;
        const identity = identityFrom(d['marker_identity']);
        const [hostPid, startTime] = [d['host_pid'], d['host_start_time']];
        if (typeof d['marker_path'] !== 'string' || typeof hostPid !== 'number' || typeof startTime !== 'number' || !identity) continue;
        out.push({ markerPath: d['marker_path'], hostPid, startTime, identity });
      } catch {
        /* a broken state file is garbage: removed by sweep() */
      }
    }
    return out;
  }

  /** Removes state files of PIDs that are not mapped (after the first full scan). */
  sweep(mapped: ReadonlySet<number>): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = /^(\d+)\.json$/.exec(name);
      if (m && !mapped.has(Number(m[1]))) this.remove(Number(m[1]));
      else if (name.endsWith('.tmp')) fs.rmSync(path.join(this.dir, name), { force: true });
    }
  }
}
