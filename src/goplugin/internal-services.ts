// The services every go-plugin gRPC server registers besides the plugin's own
// (spire-plugin-protocol.md 2.5): health, broker, stdio, controller.
import type * as grpc from '@grpc/grpc-js';
import { loadProto, lookup } from '../protos.js';
import type { Logger } from '../log.js';

export interface ServiceRegistration {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export interface ConnInfo {
  service_id: number;
  network: string;
  address: string;
}

/** Health names answered SERVING: go-plugin's "plugin", and "" (the whole server). */
const SERVING_NAMES = new Set(['plugin', '']);

export function serviceDefinition(protoFile: string, service: string): grpc.ServiceDefinition {
  return lookup<grpc.ServiceClientConstructor>(loadProto(protoFile), service).service;
}

/** Streams we must end ourselves on shutdown (they never end on their own). */
export class OpenStreams {
  private readonly calls = new Set<{ end(): void }>();
  add(call: { end(): void; on(ev: 'cancelled' | 'close', fn: () => void): unknown }): void {
    this.calls.add(call);
    const drop = (): void => {
      this.calls.delete(call);
    };
    call.on('cancelled', drop);
    call.on('close', drop);
  }
  endAll(): void {
    for (const call of this.calls) {
      try {
        call.end();
      } catch {
        // already gone
      }
    }
    this.calls.clear();
  }
}

export function healthService(streams: OpenStreams): ServiceRegistration {
  const status = (name: string): string => (SERVING_NAMES.has(name) ? 'SERVING' : 'SERVICE_UNKNOWN');
  return {
    definition: serviceDefinition('grpc/health/v1/health.proto', 'grpc.health.v1.Health'),
    implementation: {
      Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        if (!SERVING_NAMES.has(call.request.service)) {
          cb({ code: 5 /* NOT_FOUND */, details: `unknown service ${JSON.stringify(call.request.service)}` });
          return;
        }
        cb(null, { status: 'SERVING' });
      },
      Watch(call: grpc.ServerWritableStream<{ service: string }, unknown>) {
        streams.add(call);
        call.write({ status: status(call.request.service) });
        call.on('cancelled', () => call.end());
      },
    },
  };
}

/**
 * plugin.GRPCBroker/StartStream: the host sends ConnInfo for the servers it
 * brokers (SPIRE: service 1 = host services). We keep the latest per id and
 * never end the stream ourselves: the host's Accept() fails on a dead stream.
 * `onStream` runs when a stream opens: the host is connected (go-plugin hosts
 * open it right after dialing).
 */
export function brokerService(log: Logger, connInfo: Map<number, ConnInfo>, streams: OpenStreams, onStream?: () => void): ServiceRegistration {
  return {
    definition: serviceDefinition('plugin/grpc_broker.proto', 'plugin.GRPCBroker'),
    implementation: {
      StartStream(call: grpc.ServerDuplexStream<ConnInfo, ConnInfo>) {
        streams.add(call);
        onStream?.();
        call.on('data', (info: ConnInfo) => {
          connInfo.set(info.service_id, { service_id: info.service_id, network: info.network, address: info.address });
          log.debug({ service_id: info.service_id, network: info.network, address: info.address }, 'broker: host offered a service connection');
        });
        call.on('end', () => call.end());
        call.on('error', (err: Error) => log.debug({ error: err.message }, 'broker: stream error'));
      },
    },
  };
}

/** plugin.GRPCStdio/StreamStdio: open, silent (SPIRE discards it anyway). */
export function stdioService(streams: OpenStreams): ServiceRegistration {
  return {
    definition: serviceDefinition('plugin/grpc_stdio.proto', 'plugin.GRPCStdio'),
    implementation: {
      StreamStdio(call: grpc.ServerWritableStream<unknown, unknown>) {
        streams.add(call);
        call.on('cancelled', () => call.end());
      },
    },
  };
}

/** plugin.GRPCController/Shutdown: reply {}, then let the owner stop the server. */
export function controllerService(onShutdown: () => void): ServiceRegistration {
  return {
    definition: serviceDefinition('plugin/grpc_controller.proto', 'plugin.GRPCController'),
    implementation: {
      Shutdown(_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
        cb(null, {});
        setImmediate(onShutdown);
      },
    },
  };
}
