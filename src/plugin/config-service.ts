// spire.service.common.config.v1.Config: Configure and Validate, both through
// buildPluginConfig(), which collects every problem at once (style.md 2.6).
//
// Options (plugin_data, HCL v1 as SPIRE re-prints it, or plugin_data_file text):
//   daemon_socket   unix socket of the daemon's local API  (default /run/hexr/pid-mapper.sock)
//   attest_timeout  deadline for one Attest, "1s"/"500ms" or integer ms, > 0 and <= 30s (default 1s)
//   in_flight_wait  how long the daemon may wait for a marker in flight, < attest_timeout
//                   (default 500ms, capped at half of attest_timeout)
//   selectors       selector kinds to return (default: all of core/selectors.ts SELECTOR_KINDS)
//   log_level       trace | debug | info | warn | error (default: unchanged)
//
// The config is published as one frozen object through ConfigStore: a
// Configure at runtime (SIGUSR1 + plugin_data_file) swaps it atomically while
// Attest calls keep the snapshot they started with.
import type * as grpc from '@grpc/grpc-js';
import { parseHcl, ParseError } from '../core/hcl.js';
import { SELECTOR_KINDS, type SelectorKind } from '../core/selectors.js';
import { LOG_LEVELS, type LogLevel, type Logger } from '../log.js';
import { serviceDefinition, type ServiceRegistration } from '../goplugin/internal-services.js';
import { parseDurationMs } from '../core/duration.js';
import { PluginError } from './errors.js';
import { toGrpcError } from './grpc-status.js';
import { socketPathProblem } from '../socket-path.js';


export const DEFAULT_DAEMON_SOCKET = '/run/hexr/pid-mapper.sock';
export const DEFAULT_ATTEST_TIMEOUT_MS = 1000;
export const DEFAULT_IN_FLIGHT_WAIT_MS = 500;
export const MAX_ATTEST_TIMEOUT_MS = 30_000;
/**
 * Longest time the plugin answers from its copy of the daemon's map after it
 * last heard from the daemon (which sends at least every 500 ms). A daemon
 * that hangs stops the copy being used within this bound.
 */
export const DEFAULT_MAP_MAX_AGE_MS = 2000;

export interface PluginConfig {
  readonly trustDomain: string;
  readonly daemonSocket: string;
  readonly attestTimeoutMs: number;
  readonly inFlightWaitMs: number;
  readonly mapMaxAgeMs: number;
  readonly selectorKinds: ReadonlySet<SelectorKind>;
  readonly logLevel: LogLevel | undefined;
}

export interface ConfigRequest {
  core_configuration?: { trust_domain?: string } | null;
  hcl_configuration?: string;
}

const KNOWN_KEYS = new Set(['daemon_socket', 'attest_timeout', 'in_flight_wait', 'map_max_age', 'selectors', 'log_level']);

export function buildPluginConfig(req: ConfigRequest): { config?: PluginConfig; notes: string[] } {
  const notes: string[] = [];
  let options: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  try {
    const doc = parseHcl(req.hcl_configuration ?? '');
    if (typeof doc === 'string') notes.push('plugin_data must be a block of options, got a string');
    else options = doc;
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    notes.push(`plugin_data is not valid HCL: ${err.message}`);
  }

  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key)) notes.push(`unknown option "${key}"`);
  }

  let daemonSocket = DEFAULT_DAEMON_SOCKET;
  const socket = options['daemon_socket'];
  if (socket !== undefined) {
    if (typeof socket !== 'string' || !socket.startsWith('/')) {
      notes.push('daemon_socket must be an absolute path to a unix socket');
    } else if (socketPathProblem(socket) !== undefined) {
      notes.push(`daemon_socket: ${socketPathProblem(socket) as string}`);
    } else {
      daemonSocket = socket;
    }
  }

  let attestTimeoutMs: number | undefined = DEFAULT_ATTEST_TIMEOUT_MS;
  if (options['attest_timeout'] !== undefined) {
    const d = parseDurationMs(options['attest_timeout']);
    if ('problem' in d) {
      notes.push(`attest_timeout ${d.problem}`);
      attestTimeoutMs = undefined;
    } else if (d.ms <= 0 || d.ms > MAX_ATTEST_TIMEOUT_MS) {
      notes.push(`attest_timeout must be > 0 and <= 30s, got ${d.ms}ms`);
      attestTimeoutMs = undefined;
    } else {
      attestTimeoutMs = d.ms;
    }
  }

  let inFlightWaitMs: number | undefined = Math.min(DEFAULT_IN_FLIGHT_WAIT_MS, Math.floor((attestTimeoutMs ?? 0) / 2));
  if (options['in_flight_wait'] !== undefined) {
    const d = parseDurationMs(options['in_flight_wait']);
    if ('problem' in d) {
      notes.push(`in_flight_wait ${d.problem}`);
      inFlightWaitMs = undefined;
    } else if (d.ms < 0) {
      notes.push(`in_flight_wait must not be negative, got ${d.ms}ms`);
    } else if (attestTimeoutMs !== undefined && d.ms >= attestTimeoutMs) {
      notes.push(`in_flight_wait (${d.ms}ms) must be shorter than attest_timeout (${attestTimeoutMs}ms)`);
    } else {
      inFlightWaitMs = d.ms;
    }
  }

  let mapMaxAgeMs: number | undefined = DEFAULT_MAP_MAX_AGE_MS;
  if (options['map_max_age'] !== undefined) {
    const d = parseDurationMs(options['map_max_age']);
    if ('problem' in d) notes.push(`map_max_age ${d.problem}`);
    else if (d.ms < 1000 || d.ms > 30_000) notes.push(`map_max_age must be between 1s (the daemon's heartbeat is 500ms) and 30s, got ${d.ms}ms`);
    else mapMaxAgeMs = d.ms;
    if ('problem' in d || d.ms < 1000 || d.ms > 30_000) mapMaxAgeMs = undefined;
  }

  let selectorKinds: ReadonlySet<SelectorKind> = new Set(SELECTOR_KINDS);
  const selectors = options['selectors'];
  if (selectors !== undefined) {
    if (!Array.isArray(selectors)) {
      notes.push('selectors must be a list of selector kinds');
    } else {
      const kinds = new Set<SelectorKind>();
      for (const s of selectors as unknown[]) {
        if (typeof s === 'string' && (SELECTOR_KINDS as readonly string[]).includes(s)) kinds.add(s as SelectorKind);
        else notes.push(`selectors: unknown kind ${JSON.stringify(s)} (known: ${SELECTOR_KINDS.join(', ')})`);
      }
      if (selectors.length === 0) notes.push('selectors must name at least one kind');
      selectorKinds = kinds;
    }
  }

  let logLevel: LogLevel | undefined;
  const level = options['log_level'];
  if (level !== undefined) {
    const norm = typeof level === 'string' ? level.trim().toLowerCase() : undefined;
    if (norm !== undefined && (LOG_LEVELS as readonly string[]).includes(norm)) logLevel = norm as LogLevel;
    else notes.push(`log_level must be one of ${LOG_LEVELS.join(', ')}`);
  }

  if (notes.length > 0 || attestTimeoutMs === undefined || inFlightWaitMs === undefined || mapMaxAgeMs === undefined) return { notes };
  return {
    notes,
    config: Object.freeze({
      trustDomain: req.core_configuration?.trust_domain ?? '',
      daemonSocket,
      attestTimeoutMs,
      inFlightWaitMs,
      mapMaxAgeMs,
      selectorKinds: Object.freeze(selectorKinds),
      logLevel,
    }),
  };
}

/** Holds the current config; the only writer is Configure. */
export class ConfigStore {
  private cfg: PluginConfig | undefined;
  private readonly listeners: ((c: PluginConfig) => void)[] = [];
  current(): PluginConfig | undefined {
    return this.cfg;
  }
  set(cfg: PluginConfig): void {
    this.cfg = cfg;
    for (const fn of this.listeners) fn(cfg);
  }
  onChange(fn: (c: PluginConfig) => void): void {
    this.listeners.push(fn);
  }
}

export interface ConfigServiceDeps {
  store: ConfigStore;
  log: Logger;
  /** Applies log_level to every logger of the process. */
  setLogLevel: (level: LogLevel) => void;
}

export function configService(deps: ConfigServiceDeps): ServiceRegistration {
  const log = deps.log;
  return {
    definition: serviceDefinition('spire/service/common/config/v1/config.proto', 'spire.service.common.config.v1.Config'),
    implementation: {
      Configure(call: grpc.ServerUnaryCall<ConfigRequest, unknown>, cb: grpc.sendUnaryData<unknown>) {
        try {
          const { config, notes } = buildPluginConfig(call.request);
          if (!config) throw new PluginError('INVALID_CONFIG', `invalid plugin configuration: ${notes.join('; ')}`);
          if (config.logLevel) deps.setLogLevel(config.logLevel);
          deps.store.set(config);
          log.info(
            {
              daemon_socket: config.daemonSocket,
              attest_timeout_ms: config.attestTimeoutMs,
              in_flight_wait_ms: config.inFlightWaitMs,
              map_max_age_ms: config.mapMaxAgeMs,
              selectors: [...config.selectorKinds].join(','),
              trust_domain: config.trustDomain,
            },
            'plugin configured',
          );
          cb(null, {});
        } catch (err) {
          const e = toGrpcError(err);
          log.error({ error: e.details }, 'configuration rejected');
          cb(e);
        }
      },
      Validate(call: grpc.ServerUnaryCall<ConfigRequest, unknown>, cb: grpc.sendUnaryData<unknown>) {
        try {
          const { notes } = buildPluginConfig(call.request);
          cb(null, { valid: notes.length === 0, notes });
        } catch (err) {
          cb(toGrpcError(err));
        }
      },
    },
  };
}
