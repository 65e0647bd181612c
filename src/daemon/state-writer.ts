// Enriched context files: {state_dir}/{host_pid}.json, written by temp file +
// rename (readers never see half a file), removed when the mapping goes. They
// are an output for other node agents; the daemon's own decision state lives
// in the decision journal (decision-store.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spiffePath } from '../core/selectors.js';
import type { Mapping } from '../core/pid-map.js';

export class StateWriter {
  constructor(
    private readonly dir: string,
    private readonly onError: (err: Error, op: string) => void,
  ) {}

  prepare(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }

  /** `markerFile`: the marker's device:inode:birth-time. */
  write(m: Mapping, markerFile: string, nodeName: string | undefined): void {
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
      marker_file: markerFile,
      mapped_at: new Date(m.mappedAt).toISOString(),
    };
    const file = path.join(this.dir, `${m.hostPid}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
      fs.chmodSync(tmp, 0o644); // whatever the process umask is

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
