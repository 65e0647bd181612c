// Enriched context files: {state_dir}/{host_pid}.json, written by temp file +
// rename (readers never see half a file), removed when the mapping goes. They
// are an output for other node agents; the daemon's own decision state lives
// in the decision journal (decision-store.ts).
//
// Files are written in the background, one at a time, latest content per PID
// winning: a write costs about half a millisecond, and 10,000 processes
// mapped at once must not block the daemon for seconds (Attest, the map feed).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spiffePath } from '../core/selectors.js';
import type { Mapping } from '../core/pid-map.js';

export class StateWriter {
  /** Host PID -> the file's next content, or null to remove it (latest wins). */
  private readonly queue = new Map<number, string | null>();
  private draining: Promise<void> | undefined;

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
    this.queue.set(m.hostPid, `${JSON.stringify(doc, null, 2)}\n`);
    this.kick();
  }

  remove(hostPid: number): void {
    this.queue.set(hostPid, null);
    this.kick();
  }

  /** Resolves once every queued write and removal is done. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  close(): Promise<void> {
    return this.flush();
  }

  private kick(): void {
    if (this.draining) return;
    const d = this.drain();
    this.draining = d;
    void d.finally(() => {
      if (this.draining === d) this.draining = undefined;
      if (this.queue.size > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const next = this.queue.entries().next();
      if (next.done) return;
      const [pid, text] = next.value;
      this.queue.delete(pid);
      const file = path.join(this.dir, `${pid}.json`);
      if (text === null) await this.unlink(file);
      else await this.writeOne(file, text);
    }
  }

  private async writeOne(file: string, text: string): Promise<void> {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await fsp.writeFile(tmp, text);
      await fsp.chmod(tmp, 0o644); // whatever the process umask is
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      this.onError(err as Error, `write ${file}`);
    }
  }

  private async unlink(file: string): Promise<void> {
    try {
      await fsp.rm(file, { force: true });
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
      if (m && !mapped.has(Number(m[1])) && !this.queue.has(Number(m[1]))) this.remove(Number(m[1]));
      else if (name.endsWith('.tmp')) fs.rmSync(path.join(this.dir, name), { force: true });
    }
  }
}
