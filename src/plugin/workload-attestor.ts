// spire.plugin.agent.workloadattestor.v1.WorkloadAttestor: Attest(pid) asks
// the daemon and returns its selector values, filtered to the configured
// kinds. Unknown processes (including the agent's own PID, which SPIRE
// attests for its health checks) get an empty list, not an error.
// AttestReference is left to grpc-js (UNIMPLEMENTED): SPIRE >= 1.15.2 then
// falls back to Attest for PID references.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { serviceDefinition, type ServiceRegistration } from '../goplugin/internal-services.js';
import type { SelectorKind } from '../core/selectors.js';
import type { ConfigStore } from './config-service.js';
import type { DaemonClients } from './daemon-client.js';
import { PluginError } from './errors.js';
import { toGrpcError } from './grpc-status.js';

export interface WorkloadAttestorDeps {
  store: ConfigStore;
  daemon: DaemonClients;
  log: Logger;
  /** For tests; Date.now otherwise. */
  now?: () => number;
  /** Counted here: how each call was answered (the plugin logs them when it stops). */
  answers?: AttestAnswers;
}

/**
 * How Attest calls were answered: from the copy at once, from the copy after
 * waiting for it to catch up, by the daemon (straight away, or after such a
 * wait), or with no lookup at all (not configured yet, a PID <= 0).
 */
export interface AttestAnswers {
  copy: number;
  copy_after_wait: number;
  daemon: number;
  daemon_after_wait: number;
  no_lookup: number;
}

export const newAttestAnswers = (): AttestAnswers => ({ copy: 0, copy_after_wait: 0, daemon: 0, daemon_after_wait: 0, no_lookup: 0 });

interface AttestRequest {
  pid: number;
}

/** Kind of a selector value: the text before the first ':'. */
export function selectorKind(value: string): string {
  const i = value.indexOf(':');
  return i < 0 ? value : value.slice(0, i);
}

export function filterSelectors(values: readonly string[], kinds: ReadonlySet<SelectorKind>): string[] {
  return values.filter(v => v.includes(':') && (kinds as ReadonlySet<string>).has(selectorKind(v)));
}

/** Longest wait for the copy of the daemon's state to catch up before the daemon is asked instead. */
const CATCH_UP_MS = 50;

export function workloadAttestorService(deps: WorkloadAttestorDeps): ServiceRegistration {
  const { store, daemon, log } = deps;
  const now = deps.now ?? Date.now;
  const answers = deps.answers ?? newAttestAnswers();

  async function attest(pid: number, callerDeadline: grpc.Deadline, signal: AbortSignal): Promise<string[]> {
    const cfg = store.current(); // one snapshot for the whole call
    if (!cfg) throw new PluginError('NOT_CONFIGURED', 'not configured');
    if (!Number.isInteger(pid) || pid <= 0) return [];
    const start = now();
    let deadlineMs = start + cfg.attestTimeoutMs;
    const caller = callerDeadline instanceof Date ? callerDeadline.getTime() : callerDeadline;
    if (Number.isFinite(caller) && caller < deadlineMs) deadlineMs = caller;
    const res = await daemon.attest(cfg.daemonSocket, {
      pid,
      maxWaitMs: cfg.inFlightWaitMs,
      deadline: new Date(deadlineMs),
      signal,
    });
    const values = filterSelectors(res.selector_values, cfg.selectorKinds);
    log.debug({ host_pid: pid, found: res.found, selector_count: values.length, map_version: res.map_version, duration_ms: now() - start }, 'attested');
    return values;
  }

  // Hot-path memo: for one config, the same mapped selector list always
  // yields the same response object, and that object the same bytes.
  let memoKinds: ReadonlySet<SelectorKind> | undefined;
  let memo = new WeakMap<readonly string[], { selector_values: string[] }>();
  const responseFor = (values: readonly string[], kinds: ReadonlySet<SelectorKind>): { selector_values: string[] } => {
    if (kinds !== memoKinds) {
      memoKinds = kinds;
      memo = new WeakMap();
    }
    let r = memo.get(values);
    if (!r) memo.set(values, (r = { selector_values: filterSelectors(values, kinds) }));
    return r;
  };
  const base = serviceDefinition(
    'spire/plugin/agent/workloadattestor/v1/workloadattestor.proto',
    'spire.plugin.agent.workloadattestor.v1.WorkloadAttestor',
  );
  const attestDef = base['Attest'];
  const encoded = new WeakMap<object, Buffer>();
  const definition: grpc.ServiceDefinition = attestDef
    ? {
        ...base,
        Attest: {
          ...attestDef,
          responseSerialize: (value: object): Buffer => {
            let b = encoded.get(value);
            if (!b) encoded.set(value, (b = attestDef.responseSerialize(value)));
            return b;
          },
        },
      }
    : base;

  return {
    definition,
    implementation: {
      Attest(call: grpc.ServerUnaryCall<AttestRequest, unknown>, cb: grpc.sendUnaryData<unknown>) {
        const forward = (): void => {
          const abort = new AbortController();
          call.on('cancelled', () => abort.abort());
          attest(call.request.pid, call.getDeadline(), abort.signal).then(
            selector_values => cb(null, { selector_values }),
            (err: unknown) => {
              const e = toGrpcError(err);
              if (err instanceof PluginError) log.warn({ host_pid: call.request.pid, error: err.message }, 'attestation failed');
              else log.error({ host_pid: call.request.pid, error: err instanceof Error ? err.message : String(err) }, 'attestation failed unexpectedly');
              cb(e);
            },
          );
        };
        // Hot path: answered from the local copy of the daemon's state when it
        // is current (a mapped PID whose start time still matches, or a PID
        // nothing in flight can map), synchronously.
        const cfg = store.current();
        const pid = call.request.pid;
        if (!cfg || !Number.isInteger(pid) || pid <= 0) {
          answers.no_lookup++;
          return forward();
        }
        const v = daemon.local(cfg.daemonSocket, pid, cfg.mapMaxAgeMs);
        if (v.kind === 'answer') {
          answers.copy++;
          return cb(null, responseFor(v.values, cfg.selectorKinds));
        }
        if (v.kind === 'ask') {
          answers.daemon++;
          return forward();
        }
        // The daemon knows more than the copy: wait for the stream to catch
        // up (normally well under a millisecond), look once more, else ask.
        void daemon.caughtUp(cfg.daemonSocket, v.seq, CATCH_UP_MS).then(() => {
          const again = daemon.local(cfg.daemonSocket, pid, cfg.mapMaxAgeMs);
          if (again.kind === 'answer') {
            answers.copy_after_wait++;
            cb(null, responseFor(again.values, cfg.selectorKinds));
          } else {
            answers.daemon_after_wait++;
            forward();
          }
        });
      },
    },
  };
}
