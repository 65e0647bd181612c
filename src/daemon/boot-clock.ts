// When did this machine boot, in wall-clock nanoseconds? Rule 5 compares a
// process's start time (field 22 of /proc/PID/stat: clock ticks of
// CLOCK_BOOTTIME) with a marker's ctime (wall clock, ns), so it needs the
// boot time on the wall clock. btime in /proc/stat has whole seconds only,
// which made `start_slack` up to a second wider than configured.
//
// /proc/uptime is CLOCK_BOOTTIME in centiseconds. Reading it in a tight loop
// until it ticks over pins the moment of a tick to a few microseconds, so
// boot = (wall clock at the tick) - uptime. The wall clock itself is
// Date.now() (milliseconds) refined the same way: process.hrtime anchored at
// the moment Date.now() ticks. Calibration spins for at most ~12 ms and is
// redone at every resync, which also follows clock steps (NTP).
import { parseBootTime, parseUptimeCs } from '../core/procparse.js';

export interface ClockSources {
  /** Monotonic nanoseconds (process.hrtime.bigint). */
  monoNs(): bigint;
  /** Wall clock, milliseconds (Date.now). */
  wallMs(): number;
  /** Text of /proc/uptime, or undefined. */
  readUptime(): string | undefined;
  /** Text of /proc/stat, or undefined (the whole-second fallback). */
  readStat(): string | undefined;
}

export const systemClock = (readUptime: () => string | undefined, readStat: () => string | undefined): ClockSources => ({
  monoNs: () => process.hrtime.bigint(),
  wallMs: () => Date.now(),
  readUptime,
  readStat,
});

const CS_NS = 10_000_000n;

/** Wall-clock minus monotonic time, in ns, pinned at a Date.now() tick (ms precision if none is seen in 2 ms). */
export function wallOffsetNs(src: ClockSources): bigint {
  const first = src.wallMs();
  const limit = src.monoNs() + 2_000_000n;
  let before = src.monoNs();
  for (;;) {
    const ms = src.wallMs();
    const after = src.monoNs();
    if (ms !== first) return BigInt(ms) * 1_000_000n - (before + after) / 2n;
    if (after > limit) return BigInt(ms) * 1_000_000n - after;
    before = after;
  }
}

/**
 * Boot time on the wall clock, in ns. Precise to microseconds when
 * /proc/uptime is seen to tick within `maxSpinMs`, to 5 ms otherwise (a
 * frozen fixture), to a second when only btime is readable.
 */
export function calibrateBootNs(src: ClockSources, maxSpinMs = 12): bigint {
  const offset = wallOffsetNs(src);
  const wall = (): bigint => src.monoNs() + offset;
  const read = (): bigint | undefined => {
    const t = src.readUptime();
    return t === undefined ? undefined : parseUptimeCs(t);
  };
  let a = wall();
  let prev = read();
  if (prev === undefined) {
    const stat = src.readStat();
    const btime = stat === undefined ? undefined : parseBootTime(stat);
    if (btime === undefined) throw new Error('cannot read the boot time (neither /proc/uptime nor btime in /proc/stat)');
    return BigInt(btime) * 1_000_000_000n;
  }
  const limit = src.monoNs() + BigInt(maxSpinMs) * 1_000_000n;
  for (;;) {
    const a2 = wall();
    const v = read();
    const b2 = wall();
    if (v === undefined) break;
    if (v !== prev) return (a + b2) / 2n - v * CS_NS;
    if (src.monoNs() > limit) return (a2 + b2) / 2n - v * CS_NS - CS_NS / 2n;
    a = a2;
    prev = v;
  }
  return wall() - prev * CS_NS - CS_NS / 2n;
}
