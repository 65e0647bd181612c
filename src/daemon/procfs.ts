// Readers for /proc behind a `root` seam: production uses "/", tests point it
// at a fixture tree. Every reader returns undefined when the process is gone
// (ENOENT/ESRCH): a vanished PID is a normal answer, not an error.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gone, readSmall } from '../proc-file.js';
import { calibrateBootNs, systemClock, type ClockSources } from './boot-clock.js';
import {
  parseCgroup,
  parseNSpid,
  parseNsLink,
  parseStatStartTime,
  parseBootTime,
  type CgroupInfo,
} from '../core/procparse.js';

export interface Procfs {
  readonly procDir: string;
  /** Numeric entries of /proc: every PID visible to us. */
  listPids(): number[];
  /** listPids() without blocking the event loop (the listing runs on libuv's thread pool). */
  listPidsAsync?(): Promise<number[]>;
  readNSpid(pid: number): number[] | undefined;
  readStartTime(pid: number): number | undefined;
  readPidNs(pid: number): number | undefined;
  readCgroup(pid: number): CgroupInfo | undefined;
  /** Boot time on the wall clock, ns since the epoch (see boot-clock.ts); calibrated once, then cached. */
  bootTimeNs(): bigint;
  /** Calibrates the boot time again (at every resync: follows wall-clock steps). */
  recalibrate(): void;
  /** Identity of this boot (sys/kernel/random/boot_id; btime when unreadable). */
  bootId(): string;
  /** Path of a process's root directory: /proc/PID/root. */
  rootOf(pid: number): string;
  /** The last PID allocated in our PID namespace (sys/kernel/ns_last_pid), if readable. */
  readLastPid?(): number | undefined;
  /** sys/kernel/pid_max, if readable. */
  readPidMax?(): number | undefined;
  /** Tasks (processes and threads) created since boot, in every namespace: "processes" of /proc/stat. */
  readForks?(): number | undefined;
}

/** USER_HZ: the unit of /proc/PID/stat times. 100 on every Linux ABI. */
export const CLK_TCK = 100;
/** One clock tick of /proc/PID/stat, in ns. */
export const TICK_NS = 1_000_000_000n / BigInt(CLK_TCK);

function pidNames(names: string[]): number[] {
  const out: number[] = [];
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) {
      const n = Number(name);
      if (Number.isInteger(n)) out.push(n);
    }
  }
  return out;
}

export function createProcfs(opts: { root?: string; clock?: ClockSources } = {}): Procfs {
  const procDir = path.join(opts.root ?? '/', 'proc');
  // /proc/stat grows with the CPUs and interrupts (past readSmall's 64 KB on large
  // nodes, before btime and "processes"): read whole.
  const readStat = (): string | undefined => {
    try {
      return fs.readFileSync(`${procDir}/stat`, 'latin1');
    } catch (err) {
      if (gone(err)) return undefined;
      throw err;
    }
  };
  const clock = opts.clock ?? systemClock(() => readSmall(`${procDir}/uptime`), readStat);
  let bootNs: bigint | undefined;
  return {
    procDir,
    listPids() {
      return pidNames(fs.readdirSync(procDir));
    },
    async listPidsAsync() {
      return pidNames(await fs.promises.readdir(procDir));
    },
    readNSpid(pid) {
      const t = readSmall(`${procDir}/${pid}/status`);
      return t === undefined ? undefined : parseNSpid(t);
    },
    readStartTime(pid) {
      const t = readSmall(`${procDir}/${pid}/stat`);
      return t === undefined ? undefined : parseStatStartTime(t);
    },
    readPidNs(pid) {
      try {
        return parseNsLink(fs.readlinkSync(`${procDir}/${pid}/ns/pid`));
      } catch (err) {
        if (gone(err)) return undefined;
        throw err;
      }
    },
    readCgroup(pid) {
      const t = readSmall(`${procDir}/${pid}/cgroup`);
      return t === undefined ? undefined : parseCgroup(t);
    },
    bootTimeNs() {
      bootNs ??= calibrateBootNs(clock);
      return bootNs;
    },
    recalibrate() {
      bootNs = calibrateBootNs(clock);
    },
    bootId() {
      const id = readSmall(`${procDir}/sys/kernel/random/boot_id`)?.trim();
      if (id) return id;
      const t = readSmall(`${procDir}/stat`);
      return `btime:${(t === undefined ? undefined : parseBootTime(t)) ?? 'unknown'}`;
    },
    rootOf(pid) {
      return `${procDir}/${pid}/root`;
    },
    readLastPid() {
      const t = readSmall(`${procDir}/sys/kernel/ns_last_pid`);
      const n = t === undefined ? NaN : Number(t.trim());
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    },
    readPidMax() {
      const t = readSmall(`${procDir}/sys/kernel/pid_max`);
      const n = t === undefined ? NaN : Number(t.trim());
      return Number.isSafeInteger(n) && n > 0 ? n : undefined;
    },
    readForks() {
      const n = Number(/^processes (\d+)$/m.exec(readStat() ?? '')?.[1] ?? NaN);
      return Number.isSafeInteger(n) ? n : undefined;
    },
  };
}
