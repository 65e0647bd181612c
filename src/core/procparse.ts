// Pure parsers for the /proc formats the mapper trusts. proc(5) is the
// reference: these values are written by the kernel, not by the workload.

/**
 * NSpid line of /proc/PID/status: the PID in each PID namespace the process
 * is a member of, outermost first. The last value is the PID as seen inside
 * the process's own (innermost) namespace: the "container PID".
 * Returns undefined when the line is missing (kernels before 4.1) or garbled.
 */
export function parseNSpid(statusText: string): number[] | undefined {
  let start: number;
  if (statusText.startsWith('NSpid:')) start = 0;
  else {
    const at = statusText.indexOf('\nNSpid:');
    if (at < 0) return undefined;
    start = at + 1;
  }
  let end = statusText.indexOf('\n', start);
  if (end < 0) end = statusText.length;
  const fields = statusText.slice(start + 6, end).trim().split(/\s+/);
  const out: number[] = [];
  for (const f of fields) {
    if (!/^\d{1,10}$/.test(f)) return undefined;
    const n = Number(f);
    if (n <= 0) return undefined;
    out.push(n);
  }
  return out.length > 0 ? out : undefined;
}

/**
 * Field 22 (starttime, clock ticks after boot) of /proc/PID/stat. The comm
 * field (2) is in parentheses and may itself contain spaces and ')' so the
 * remaining fields are counted after the LAST ')'.
 */
export function parseStatStartTime(statText: string): number | undefined {
  const close = statText.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") " come fields 3.. separated by single spaces; starttime is field 22:
  // skip 19 spaces (fields 3..21) without splitting the whole line (hot path).
  let i = close + 1;
  for (let field = 2; field < 22; field++) {
    i = statText.indexOf(' ', i);
    if (i < 0) return undefined;
    i++;
  }
  let end = statText.indexOf(' ', i);
  if (end < 0) end = statText.length;
  const v = statText.slice(i, end).trimEnd();
  if (!/^\d{1,20}$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** readlink of /proc/PID/ns/pid: "pid:[4026531836]" → 4026531836. */
export function parseNsLink(linkText: string, kind = 'pid'): number | undefined {
  const m = /^([a-z_]+):\[(\d{1,20})\]$/.exec(linkText.trim());
  if (!m || m[1] !== kind) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** btime line of /proc/stat: boot time in seconds since the epoch. */
export function parseBootTime(procStatText: string): number | undefined {
  const m = /(?:^|\n)btime (\d+)/.exec(procStatText);
  return m ? Number(m[1]) : undefined;
}

/**
 * First field of /proc/uptime ("350735.47 234388.90"): time since boot
 * (CLOCK_BOOTTIME, the clock of /proc/PID/stat start times) in centiseconds.
 */
export function parseUptimeCs(text: string): bigint | undefined {
  const m = /^(\d{1,12})\.(\d{2})\s/.exec(text);
  return m ? BigInt(m[1] as string) * 100n + BigInt(m[2] as string) : undefined;
}

export interface CgroupInfo {
  /** Pod UID, lower case with '-' separators, when the process is in a kubepods cgroup. */
  readonly podUid?: string;
  /** 64-hex container ID from the innermost cgroup segment, when there is one. */
  readonly containerId?: string;
}

const UUID_RE = /^[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}$/i;
const HASH_UID_RE = /^[0-9a-f]{32}$/i; // static (mirror) pods use a config hash

/** Normalizes a pod UID as found in a kubelet path or a cgroup segment; undefined if it is not one. */
export function normalizePodUid(text: string): string | undefined {
  if (UUID_RE.test(text) || HASH_UID_RE.test(text)) return text.toLowerCase().replace(/_/g, '-');
  return undefined;
}

const POD_SEG_RE = /(?:^|[-_.])pod([0-9a-f_-]{32,36})(?:\.slice)?$/i;
const CONTAINER_SEG_RE = /^(?:cri-containerd-|crio-|docker-|containerd-)?([0-9a-f]{64})(?:\.scope)?$/i;

function parseCgroupPath(path: string): CgroupInfo {
  let podUid: string | undefined;
  let containerId: string | undefined;
  for (const seg of path.split('/')) {
    if (seg === '') continue;
    const pm = POD_SEG_RE.exec(seg);
    if (pm?.[1] !== undefined) {
      const uid = normalizePodUid(pm[1]);
      if (uid !== undefined) {
        podUid = uid;
        containerId = undefined; // a container segment counts only below the pod
        continue;
      }
    }
    const cm = CONTAINER_SEG_RE.exec(seg);
    if (cm?.[1] !== undefined && podUid !== undefined) containerId = cm[1].toLowerCase();
  }
  const out: { podUid?: string; containerId?: string } = {};
  if (podUid !== undefined) out.podUid = podUid;
  if (containerId !== undefined) out.containerId = containerId;
  return out;
}

/**
 * /proc/PID/cgroup: lines "hierarchy-ID:controller-list:cgroup-path" (v1) or
 * "0::path" (v2). Handles cgroupfs (kubepods/besteffort/pod<uid>/<id>) and
 * systemd (kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope)
 * drivers. The unified (v2) line wins when it names a pod; otherwise the
 * first v1 line that does.
 */
export function parseCgroup(text: string): CgroupInfo {
  let v1: CgroupInfo | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0) continue; // not "id:controllers:path"
    const info = parseCgroupPath(line.slice(b + 1));
    if (info.podUid === undefined) continue;
    if (line.startsWith('0::')) return info;
    v1 ??= info;
  }
  return v1 ?? {};
}
