// Logging: pino, JSON, one object per line on fd 2 (stderr), in the shape
// hashicorp/go-hclog writes, so the SPIRE agent (go-plugin) re-logs plugin
// lines at their own level: "@level", "@message" and "@timestamp" are always
// strings and the timestamp has exactly six fractional digits.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names used in log lines, so that every module names a thing the same way. */
export const F = {
  module: '@module',
  hostPid: 'host_pid',
  containerPid: 'container_pid',
  markerPath: 'marker_path',
  podUid: 'pod_uid',
  role: 'process_role',
  reason: 'reason',
  err: 'error',
  version: 'map_version',
} as const;

const HCLOG_LEVEL: Record<string, string> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'error',
};

/** ISO-8601 UTC with exactly six fractional digits, e.g. 2026-08-22T10:00:00.000123Z. */
export function isoMicros(epochMs: number = performance.timeOrigin + performance.now()): string {
  const ms = Math.floor(epochMs);
  const micros = Math.floor((epochMs - ms) * 1000);
  const iso = new Date(ms).toISOString(); // ...ss.mmmZ
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to fd 2, synchronously (so exit-time lines survive). */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      messageKey: '@message',
      base: null,
      timestamp: () => `,"@timestamp":"${isoMicros()}"`,
      formatters: {
        level: (label: string) => ({ '@level': HCLOG_LEVEL[label] ?? 'info' }),
      },
      serializers: { error: pino.stdSerializers.err, err: pino.stdSerializers.err },
    },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
