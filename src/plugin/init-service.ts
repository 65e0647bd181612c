// spire.service.private.init.v1.Init: the SPIRE plugin SDK's private
// handshake (spire-plugin-protocol.md 3.1). Init lists exactly the services
// SPIRE should bind; Deinit releases what the plugin holds.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { serviceDefinition, type ServiceRegistration } from '../goplugin/internal-services.js';

export const PLUGIN_SERVICE_NAMES = [
  'spire.plugin.agent.workloadattestor.v1.WorkloadAttestor',
  'spire.service.common.config.v1.Config',
] as const;

export interface InitServiceDeps {
  log: Logger;
  /** Called on Deinit; the plugin keeps serving until the host sends Shutdown. */
  onDeinit: () => Promise<void> | void;
}

export function initService(deps: InitServiceDeps): ServiceRegistration {
  const { log } = deps;
  return {
    definition: serviceDefinition('spire/service/private/init/v1/init.proto', 'spire.service.private.init.v1.Init'),
    implementation: {
      Init(call: grpc.ServerUnaryCall<{ host_service_names: string[] }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        log.debug({ host_service_names: call.request.host_service_names.join(',') }, 'init');
        cb(null, { plugin_service_names: [...PLUGIN_SERVICE_NAMES] });
      },
      Deinit(_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
        log.debug('deinit');
        Promise.resolve()
          .then(deps.onDeinit)
          .then(
            () => cb(null, {}),
            (err: unknown) => {
              log.warn({ error: err instanceof Error ? err.message : String(err) }, 'deinit: cleanup failed');
              cb(null, {});
            },
          );
      },
    },
  };
}
